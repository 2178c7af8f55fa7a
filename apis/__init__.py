"""kos APIs."""
