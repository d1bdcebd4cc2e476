"""Adapters to hospital systems; each implements a port defined in ``connector.ports``."""
