"""`/v1/credits` endpoints."""
