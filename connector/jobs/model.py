"""A durable job as stored and as the management API shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    key: str
    params: dict[str, Any]
    state: JobState
    stage: str
    percent: float
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    node: str | None = None
    owner: str | None = None
    lease_until: datetime | None = None
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "state": self.state.value,
            "stage": self.stage,
            "percent": round(self.percent, 1),
            "attempts": self.attempts,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
            "result": self.result,
            "error": self.error,
        }
