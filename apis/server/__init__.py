"""The API servers: the ``cosi.resource.State`` servicer over a kos State, the machine and
security services, authorization/proxying of every call, and the server assembly."""
