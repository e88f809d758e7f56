"""synthct.metrics."""
