"""`/v1/keys` endpoints."""
