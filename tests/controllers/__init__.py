"""Tests of kos.controllers."""
