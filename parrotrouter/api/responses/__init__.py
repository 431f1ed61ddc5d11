"""The OpenAI Responses API, inbound: `/v1/responses` decoded to the canonical chat request, and
the answer encoded back (or passed through natively to deployments that speak it)."""
