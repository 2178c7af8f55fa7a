"""Tests of kos.resources.pki."""
