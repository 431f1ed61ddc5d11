"""GET /metrics: the Prometheus exposition of observe/metrics.py, for the master key, the metrics
token or a trusted network."""
