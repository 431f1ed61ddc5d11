"""Pooled HTTP client for upstream providers, SSE reading, and transport error mapping."""
