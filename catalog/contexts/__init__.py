"""Bundled JSON-LD contexts (never fetched from the network)."""
