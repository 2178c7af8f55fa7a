"""Generated betterproto code for the etcd v3 API subset (do not edit)."""
