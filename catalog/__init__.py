"""HealthDCAT-AP catalog: model, RDF, serialisations, validation, HTML (imports nothing of ours)."""
