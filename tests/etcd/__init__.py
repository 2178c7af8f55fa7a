"""Tests of the etcd spec renderer, client, join logic and a real mTLS cluster."""
