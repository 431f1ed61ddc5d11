"""`GET /v1/models` and `GET /v1/models/{id}`: what can be used here, with prices."""
