"""Building blocks of the FHIR sources: HTTP with retries, authentication, Bulk Data
``$export``, the shapes a server's JSON must have, search parameters both sources share."""
