"""phems-connector: a FHIR-native data space connector (DSP 2025-1, HealthDCAT-AP, ODRL)."""

__version__ = "0.1.0"
