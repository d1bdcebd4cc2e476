"""Where released answers are kept: the same query on the same data gets the same answer.

An answer is kept by (dataset, data version, query digest). ``FlatViews.version`` changes with
the FHIR data, the dataset's scope and the opt-outs, so nothing computed before an opt-out is
served after it. Only released values are kept (noisy, rounded, suppressed cells as null)
and the noise draw they were released from (noisy cells before suppression and rounding, what
a secure-aggregation share masks): never a true value. ``keep`` is first-writer-wins, so two
replicas answering the same new query at once serve one answer. Answers are JSON objects
(``Release.to_json``): the store knows nothing of their meaning. The SQL implementation is
``connector.db.aggregate.SqlAnswerStore``; ``MemoryAnswerStore`` is for tests and benchmarks.
"""

from __future__ import annotations

from typing import Any, Protocol

Answer = dict[str, Any]


class AnswerStore(Protocol):
    async def get(self, dataset_id: str, version: str, digest: str) -> Answer | None: ...

    async def keep(self, dataset_id: str, version: str, digest: str, answer: Answer) -> Answer:
        """Store ``answer`` unless one is kept already; return the kept one."""
        ...

    async def forget_other_versions(self, dataset_id: str, version: str) -> int:
        """Drop the dataset's answers for every other data version; how many were dropped."""
        ...


class MemoryAnswerStore:
    def __init__(self) -> None:
        self._answers: dict[tuple[str, str, str], Answer] = {}

    async def get(self, dataset_id: str, version: str, digest: str) -> Answer | None:
        return self._answers.get((dataset_id, version, digest))

    async def keep(self, dataset_id: str, version: str, digest: str, answer: Answer) -> Answer:
        return self._answers.setdefault((dataset_id, version, digest), answer)

    async def forget_other_versions(self, dataset_id: str, version: str) -> int:
        stale = [k for k in self._answers if k[0] == dataset_id and k[1] != version]
        for k in stale:
            del self._answers[k]
        return len(stale)

    def clear(self) -> None:
        self._answers.clear()
