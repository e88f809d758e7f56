"""synthct.io."""
