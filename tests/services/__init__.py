"""Tests of the service supervisor, its log rings and the containerd service."""
