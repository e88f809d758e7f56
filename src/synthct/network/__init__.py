"""synthct.network."""
