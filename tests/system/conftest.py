"""Fixtures of the system tests: ``kube_api`` (a real kube-apiserver, see kubeapi.py)."""

from tests.system.kubeapi import kube_api

__all__ = ["kube_api"]
