"""`/v1/usage` endpoints."""
