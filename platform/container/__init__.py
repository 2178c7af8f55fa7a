"""The ``container`` platform: a namespace node started by the provisioner."""
