"""`/v1/generations` endpoints."""
