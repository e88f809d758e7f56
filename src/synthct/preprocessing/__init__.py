"""synthct.preprocessing."""
