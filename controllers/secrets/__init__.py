"""Secrets controllers: root secrets from the machine config, certificate SANs from node
addresses and hostname, issued certificates (API, etcd, Kubernetes) with renewal, and the
worker's remote (trustd-like) API certificate. ``assembly.secrets_controllers`` lists them."""
