"""Progress of work running in another process, passed back through a small file.

A worker process cannot reach the event loop or the database; it writes its stage and
percentage to a file (atomically, at most a few times a second) that the job's runner polls.
Picklable, so it travels to a process pool with the work.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Progress:
    path: Path
    min_interval: float = 0.2
    _last: float = field(default=0.0, repr=False)

    def __call__(self, stage: str, percent: float) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval and percent < 100:
            return
        self._last = now
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stage": stage, "percent": float(percent)}))
        os.replace(tmp, self.path)

    def read(self) -> tuple[str, float] | None:
        try:
            data = json.loads(self.path.read_text())
            return str(data["stage"]), float(data["percent"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
