"""Jinja2 templates of the connector's own UI pages (sign-in, negotiation progress)."""
