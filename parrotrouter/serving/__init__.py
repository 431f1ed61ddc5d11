"""The serving core: one generation request, whichever API it came in by, planned, admitted,
reserved, attempted with failover, normalised and recorded — typed end to end, with no knowledge
of HTTP (the inbound APIs in `api/` decode to `GenerationRequest` and encode what comes back)."""
