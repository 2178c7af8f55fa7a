"""Tests of kos.resources.machineconfig, kos.resources.config and the config CLI commands."""
