"""Synthetic FHIR bundles (DESIGN.md §4, issue 21)."""
