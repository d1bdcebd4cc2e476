"""Work for the job tests' process pool (a module the spawned workers can import)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def count_up(progress: Any, steps: int) -> int:
    for i in range(steps):
        progress(f"step {i + 1}", 100.0 * (i + 1) / steps)
        time.sleep(0.05)
    return steps


def note_and_sleep(progress: Any, log: str, seconds: float) -> str:
    """Append a line to ``log`` when the work starts and when it ends."""
    with Path(log).open("a") as out:
        out.write("start\n")
    progress("sleeping", 10.0)
    time.sleep(seconds)
    with Path(log).open("a") as out:
        out.write("end\n")
    return "slept"


def fail(progress: Any) -> None:
    raise RuntimeError("the work failed")
