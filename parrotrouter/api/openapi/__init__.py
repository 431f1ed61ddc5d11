"""`GET /openapi.json`: the gateway's own OpenAPI 3.1 document, built once at start-up."""
