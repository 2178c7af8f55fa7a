"""Cluster membership: this node's identity and affiliate, the discovery registry exchange
with the control planes, and the Members derived from the affiliates."""
