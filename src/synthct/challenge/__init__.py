"""synthct.challenge."""
