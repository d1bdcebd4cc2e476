"""A connector's store made in the test process, for CLI commands that only read one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from connector.composition import build_services
from connector.settings import load_settings


def make_store(data_dir: Path, database_url: str = "") -> None:
    """What a connector's first start leaves: the data directory, keys and a migrated store."""

    async def go() -> None:
        services = await build_services(load_settings(data_dir=data_dir, database_url=database_url))
        await services.aclose()

    asyncio.run(go())
