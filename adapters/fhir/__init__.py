"""Building blocks of the FHIR REST adapter (``adapters.fhir_rest``): HTTP with retries,
authentication, Bulk Data ``$export``."""
