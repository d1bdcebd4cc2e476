"""Data plane: access tokens bound to an agreement and a transfer. The pull endpoint that
checks them is ``connector.api.dataplane``."""
