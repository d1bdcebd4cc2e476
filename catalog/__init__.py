"""HealthDCAT-AP catalog model, serialisations and validation (pure RDF; imports nothing of ours)."""
