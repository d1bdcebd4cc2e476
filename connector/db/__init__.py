"""Persistence: SQLAlchemy 2 Core tables, the async engine and Alembic migrations."""
