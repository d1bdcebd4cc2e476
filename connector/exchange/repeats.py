"""Initial messages arrive more than once (a peer's retry, copies racing each other): the
second and later copies get the process the first created, never an error or a second one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

P = TypeVar("P")


async def created_or_recorded(
    create: Callable[[], Awaitable[tuple[P, bool]]],
    recorded: Callable[[], Awaitable[P | None]],
    *,
    also: tuple[type[Exception], ...] = (),
) -> tuple[P, bool]:
    """``create()`` (returns the process and whether it is new); if a unique constraint (or
    one of ``also``) refuses it, the process ``recorded()`` finds, as not new; when there is
    none, the error stands."""
    refusals: tuple[type[Exception], ...] = (IntegrityError, *also)
    try:
        return await create()
    except refusals:
        existing = await recorded()
        if existing is None:
            raise
        return existing, False
