"""Jinja2 templates of the catalog pages (package data)."""
