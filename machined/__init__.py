"""kos machined: PID 1."""
