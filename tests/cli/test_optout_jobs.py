"""`phems-connector optout add|remove|list` and `jobs list|watch` on the store of a connector
that has run here: one line per answer, exit 2 with one line for bad input."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from connector.db.engine import create_engine
from connector.jobs import SqlJobStore
from tests.cli.stores import make_store
from tests.cli.test_errors import Cli, cli

__all__ = ["cli"]


def test_optouts_are_added_listed_and_removed(cli: Cli, tmp_path: Path) -> None:
    assert cli("optout", "list").code == 2  # no connector has run here
    make_store(tmp_path / "phems-data")
    added = cli("optout", "add", "p1", "Patient/p2", "p1")
    assert added.code == 0 and added.out.strip() == "added: 2 (p1, p2); 2 on the list"
    again = cli("optout", "add", "p2")
    assert again.out.strip() == "added: 0 (none); 2 on the list"
    assert "already listed: p2" in again.err
    listed = cli("optout", "list", "--json")
    assert [o["patientId"] for o in json.loads(listed.out)] == ["p1", "p2"]
    assert all(o["addedBy"].startswith("cli:") for o in json.loads(listed.out))
    bad = cli("optout", "add", "not a patient id")
    assert bad.code == 2 and len(bad.err.strip().splitlines()) == 1
    assert "is not a FHIR Patient id" in bad.err and "Traceback" not in bad.err
    removed = cli("optout", "remove", "p1", "p9")
    assert removed.out.strip() == "removed: 1 (p1); 1 on the list"
    assert "not listed: p9" in removed.err
    verified = cli("audit", "verify")
    # One entry a change: the two added together, p1 removed (a repeat changes nothing).
    assert verified.code == 0 and "intact: 2 entries" in verified.out


def test_jobs_are_listed_and_watched(cli: Cli, tmp_path: Path) -> None:
    make_store(tmp_path / "phems-data")

    async def jobs() -> tuple[str, str]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'phems-data' / 'phems.db'}")
        store = SqlJobStore(engine)
        now = datetime.now(UTC)
        try:
            done = await store.enqueue(kind="view-cache", key="a", params={}, now=now)
            claimed = await store.claim(
                owner="o", node="n", kinds=["view-cache"], now=now, lease=now - now
            )
            assert claimed is not None
            await store.finish(done.id, "o", result={"rows": 1}, now=now)
            failed = await store.enqueue(kind="synthetic-fit", key="b", params={}, now=now)
            await store.claim(
                owner="o", node="n", kinds=["synthetic-fit"], now=now, lease=now - now
            )
            await store.fail(failed.id, "o", error="no data", now=now, retry_at=None)
            return done.id, failed.id
        finally:
            await engine.dispose()

    done, failed = asyncio.run(jobs())
    listed = cli("jobs", "list")
    assert listed.code == 0 and done in listed.out and "failed" in listed.out
    assert "(no data)" in listed.out
    assert cli("jobs", "watch", done).code == 0
    watched = cli("jobs", "watch", failed)
    assert watched.code == 1 and "failed: no data" in watched.err
    unknown = cli("jobs", "watch", "nope")
    assert unknown.code == 2 and unknown.err.strip() == "error: no job nope"
