"""Data plane: access tokens bound to an agreement and a transfer, and the pull endpoint."""
