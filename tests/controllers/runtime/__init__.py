"""Tests of the controller runtime (kos.controllers.runtime)."""
