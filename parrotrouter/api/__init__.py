"""HTTP in and out: one package per public endpoint, plus the shared error and SSE plumbing."""
