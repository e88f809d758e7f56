"""synthct.inference."""
