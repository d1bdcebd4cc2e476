"""Fulfilment: how an agreement is delivered from the FHIR data (DESIGN.md §4)."""
