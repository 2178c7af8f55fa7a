"""kos controllers."""
