"""Tests of the gRPC APIs against a real machined process."""
