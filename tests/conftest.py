"""Fixtures shared by all tests: free loopback ports, the PostgreSQL URL, artifact folder."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ARTIFACTS = REPO / "build" / "test-artifacts"
PG_URL = os.environ.get("PHEMS_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def pg_url() -> str:
    """PostgreSQL URL; on CI a missing server is a failure, never a skip."""
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required when CI=true")
        pytest.skip("PostgreSQL not running on 127.0.0.1:5432")
    return PG_URL


@pytest.fixture(scope="session")
def pg_database(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with fresh_pg_database(pg_url, "phems_test") as url:
        yield url


@contextmanager
def fresh_pg_database(pg_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``pg_url`` (its URL), dropped (with
    any connections left to it) on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _in_thread(_admin(pg_url, f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        _in_thread(_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _in_thread(coro: Coroutine[Any, Any, None]) -> None:
    # Session fixtures may be first requested from inside a running event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()
