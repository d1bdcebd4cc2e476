"""The job store and runner run against SQLite and PostgreSQL (the store suite's engines)."""

from tests.store.conftest import engine

__all__ = ["engine"]
