"""What the outbox holds: a message to send or a step of our own to take (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The ``message_type`` of an outbox item that is not a message but a step of our own: the
# process's state calls for a decision or a reply (STYLE.md §3: handlers record, the loop
# acts), taken by the outbox loop after the answer to the message that called for it.
STEP = "phems:step"


@dataclass(frozen=True)
class OutboxItem:
    """One claimed outbox item: a message to send (``url``, ``audience``, ``body``) or a step
    (``message_type`` ``STEP``; ``body`` the facts it needs)."""

    id: int
    process_kind: str  # negotiation | transfer
    process_id: str
    message_type: str
    url: str
    audience: str
    body: dict[str, Any]
    attempts: int
    counterparty_pid: str | None = None  # at the claim: fills a ``{pid}`` in ``url``

    @property
    def is_step(self) -> bool:
        return self.message_type == STEP
