"""`GET /health` (liveness) and `GET /ready` (state store and providers loaded)."""
