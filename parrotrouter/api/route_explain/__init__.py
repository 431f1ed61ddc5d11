"""`POST /v1/route/explain`: what routing would do with a request, without calling any model."""
