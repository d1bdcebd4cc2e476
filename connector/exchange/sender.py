"""The outbox loop: the only place that sends DSP messages and takes the steps a received
message called for (STYLE.md §3).

It claims due items (one per process, oldest first; ``FOR UPDATE SKIP LOCKED`` so replicas
share the work). A message it sends with a fresh self-issued token and records the outcome:
sent (plus the counterparty's pid from a 201 ACK), retried with exponential back-off on a
transport error, 408, 429 or 5xx, or, on any other refusal or after ``max_attempts``, failed,
which terminates the process locally with the reason. A crash between sending and recording
means the message is sent again; receivers treat repeats as no-ops. A step (``STEP``) it hands
to the service of its process kind (``steps``), which takes it in one transaction with what it
records; a step that raises is retried like a message, and fails like one.

While it runs, the outbox leases the items this replica's own transactions queue to it at
the insert (``Outbox.on_leased``, PostgreSQL), when nothing older of their process is
unsent: they are sent (or taken) right after their commit, with no claim (a statement and a
wake-up fewer an item). If the replica dies first, the lease expires and a claim takes them,
as any other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import aiohttp
import orjson

from connector.audit import AuditLog
from connector.dsp import negotiation as nsm
from connector.dsp import transfer as tsm
from connector.dsp.messages import ContractNegotiation, TransferProcess, parse_message
from connector.dsp.urls import PID_PLACEHOLDER, fill_pid
from connector.errors import InvalidMessageError, InvalidTransitionError
from connector.exchange.ports import DspStores, Outbox, OutboxItem
from connector.identity.tokens import TokenIssuer
from connector.ports import Clock

log = logging.getLogger(__name__)
Step = Callable[[OutboxItem], Awaitable[None]]

# A DSP answer is a small JSON object; a peer sending more is refused, not buffered.
MAX_RESPONSE_BYTES = 1 << 20
KEEP_SENT = timedelta(days=7)
PURGE_EVERY = timedelta(hours=1)
# 409: the counterparty cannot take the message in its process's present state, which may be
# about to change. Eclipse EDC answers 409 while it still holds the negotiation it is sending
# us its request for (our agreement can arrive before our 201 has been read), and for a
# transition it does not allow yet.
RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# 404 on the first attempts only: a counterparty may record its process after our answer to
# its request has reached it, so our next message (sent right after that answer) can arrive
# first. Later, 404 means the process is unknown there, and the message fails.
EARLY_RETRYABLE = frozenset({404})


@dataclass(frozen=True)
class SendPolicy:
    max_attempts: int = 12
    base_delay: float = 0.5
    max_delay: float = 60.0
    lease_seconds: float = 15.0  # longer than one send (the HTTP timeout)
    # Claimed sends in flight at once (messages sent at their commit come on top: see
    # OutboxSender._claimed). More is not faster on a busy connector: with 32-64 in flight
    # the event loop and the database pool were the bottleneck (bench/README.md, DSP
    # negotiation: 65/s at 64, 85/s at 16, 70/s at 8). 16 at 200 ms a round trip is still
    # 80 messages a second for one replica.
    batch: int = 16
    # Attempts for which a 404 is retried (EARLY_RETRYABLE): about 4-8 s with the delays above.
    early_attempts: int = 5

    def delay(self, attempts: int) -> float:
        capped: float = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        return capped * (0.5 + random.random() / 2)  # jitter: replicas do not retry in step


class OutboxSender:
    def __init__(
        self,
        *,
        stores: DspStores,
        tokens: TokenIssuer,
        timeout_seconds: float,
        clock: Clock,
        audit: AuditLog,
        poll_seconds: float,
        policy: SendPolicy | None = None,
        steps: Mapping[str, Step] | None = None,
        socket_factory: Callable[[Any], socket.socket] | None = None,
    ) -> None:
        self.stores = stores
        # Who takes a step, by process kind (the services' ``take_step``).
        self.steps: Mapping[str, Step] = steps or {}
        # connector.egress: only addresses peers may make us reach.
        self.socket_factory = socket_factory
        self.tokens = tokens
        self.timeout_seconds = timeout_seconds
        self._http: aiohttp.ClientSession | None = None
        self.clock = clock
        self.audit = audit
        self.poll_seconds = poll_seconds
        self.policy = policy or SendPolicy()
        self._wake = asyncio.Event()
        self._purged_at: datetime | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # Of those, the claimed ones: ``policy.batch`` bounds them. Messages leased to us at
        # their commit are sent at once besides (bounded by the requests that queue them);
        # counting them would starve the claim of the messages waiting behind them.
        self._claimed = 0
        # Processes with a message in flight, and those of them that queued another meanwhile
        # (not claimable until the one in flight is recorded as sent).
        self._sending: dict[str, int] = {}
        self._blocked: set[str] = set()

    @property
    def outbox(self) -> Outbox:
        return self.stores.outbox

    def _session(self) -> aiohttp.ClientSession:
        """Our own HTTP client (aiohttp: about half the CPU of httpx a message), made on first
        use, inside the running loop."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                # DSP has no cookies: none kept from one peer's answer, none sent to another
                # (and no jar to update and filter on every message).
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(socket_factory=self.socket_factory),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def wake(self, process_ids: Collection[str] = ()) -> None:
        """Messages were queued (for these processes): claim now rather than at the next poll."""
        self._blocked.update(p for p in process_ids if p in self._sending)
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: claim, send, record. Never raises (errors are logged).

        Sends run as tasks (at most ``policy.batch`` at once) so a message queued while
        others are in flight is claimed at once instead of after the slowest of them; a
        finished send wakes the loop when it may have unblocked the process's next message.
        """
        # Attached: messages queued by this replica's transactions are leased to it at the
        # insert and sent at once after the commit (no claim), when nothing older of their
        # process is unsent.
        self.outbox.lease = timedelta(seconds=self.policy.lease_seconds)
        self.outbox.on_leased = self.send_now
        try:
            while True:
                await self._purge_now_and_then()
                # Cleared before claiming: a wake-up during the claim is for a commit the
                # claim may have missed, so it claims again at once.
                self._wake.clear()
                await self._claim_some()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
        finally:
            if self.outbox.on_leased == self.send_now:
                self.outbox.on_leased = None
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim due messages and send them all before returning (tests, tools)."""
        items = await self.outbox.claim(
            now=self.clock.now(), lease_seconds=self.policy.lease_seconds, limit=self.policy.batch
        )
        if items:
            await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def _purge_now_and_then(self) -> None:
        """Hourly: forget messages delivered or failed more than a week ago."""
        now = self.clock.now()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        try:
            await self.outbox.purge(before=now - KEEP_SENT)
        except Exception:
            log.exception("outbox purge failed; trying again in an hour")

    async def _claim_some(self) -> int:
        room = self.policy.batch - self._claimed
        if room <= 0:
            return 0
        try:
            items = await self.outbox.claim(
                now=self.clock.now(), lease_seconds=self.policy.lease_seconds, limit=room
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox claim failed; retrying")
            return 0
        full = len(items) == room
        for item in items:
            self._start(item, full=full, claimed=True)
        return len(items)

    def send_now(self, items: Collection[OutboxItem]) -> None:
        """Items a commit just queued, already leased to us (``Outbox.on_leased``)."""
        for item in items:
            self._start(item, full=False, claimed=False)

    def _start(self, item: OutboxItem, *, full: bool, claimed: bool) -> None:
        task = asyncio.create_task(self._deliver_logged(item))
        self._inflight.add(task)
        self._claimed += claimed
        self._sending[item.process_id] = self._sending.get(item.process_id, 0) + 1
        task.add_done_callback(partial(self._delivered, item.process_id, full, claimed))

    def _delivered(
        self, process_id: str, full: bool, claimed: bool, task: asyncio.Task[None]
    ) -> None:
        self._inflight.discard(task)
        self._claimed -= claimed
        left = self._sending.pop(process_id) - 1
        if left:
            self._sending[process_id] = left
        # Claim again only if it may find something: the process's next message, queued
        # during this send (claimable now that this one is recorded), or a claim cut short.
        if process_id in self._blocked and not left:
            self._blocked.discard(process_id)
            self._wake.set()
        if full:
            self._wake.set()

    async def _deliver_logged(self, item: OutboxItem) -> None:
        try:
            await self._deliver(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease expires and the message is claimed again.
            log.exception("sending %s for %s failed", item.message_type, item.process_id)

    async def _deliver(self, item: OutboxItem) -> None:
        if item.is_step:
            await self._take(item)
            return
        url = self._resolve_url(item)
        if url is None:
            # The counterparty's pid is not known yet (its ACK is being recorded): soon.
            await self.outbox.mark_retry(
                item.id,
                error="waiting for the counterparty's process id",
                retry_at=self.clock.now() + timedelta(seconds=0.2),
            )
            return
        try:
            # Bounded by the lease: a peer trickling bytes must not outlive our claim (another
            # sender would then send the same message concurrently).
            async with asyncio.timeout(self.policy.lease_seconds - 3):
                response = await self._post(url, item)
        except Exception as exc:
            # Any error while sending is an attempt (aiohttp raises ValueError or
            # UnicodeError for some URLs): a message that can never be sent fails after
            # max_attempts instead of being claimed again forever.
            await self._retry_or_fail(item, f"{type(exc).__name__}: {exc} ({url})")
            return
        log.info("sent %s to %s: HTTP %d", item.message_type, url, response.status)
        if response.status in (200, 201, 202, 204):
            await self._sent(item, response)
        elif response.status in RETRYABLE or (
            response.status in EARLY_RETRYABLE and item.attempts < self.policy.early_attempts
        ):
            await self._retry_or_fail(
                item, f"HTTP {response.status} from {url}: {_reason(response.body)}"
            )
        else:
            await self._fail(
                item,
                f"refused by the counterparty: HTTP {response.status} {_reason(response.body)}",
            )

    async def _take(self, item: OutboxItem) -> None:
        """A step: the service of its process kind takes it (marking it taken with what it
        records); if that raises, it is retried with back-off, then fails."""
        take = self.steps.get(item.process_kind)
        if take is None:
            await self._retry_or_fail(item, f"no step taker for a {item.process_kind} here")
            return
        try:
            await take(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("step for %s %s failed", item.process_kind, item.process_id, exc_info=True)
            await self._retry_or_fail(item, f"step failed: {type(exc).__name__}: {exc}")

    async def _post(self, url: str, item: OutboxItem) -> Answer:
        headers = {
            "Authorization": f"Bearer {self.tokens.issue(item.audience)}",
            "Content-Type": "application/json",
        }
        async with self._session().post(
            url, data=orjson.dumps(item.body), headers=headers, allow_redirects=False
        ) as response:
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
            return Answer(response.status, bytes(body))

    @staticmethod
    def _resolve_url(item: OutboxItem) -> str | None:
        if PID_PLACEHOLDER not in item.url:
            return item.url
        if item.counterparty_pid is None:
            return None
        return fill_pid(item.url, item.counterparty_pid)

    async def _sent(self, item: OutboxItem, response: Answer) -> None:
        now = self.clock.now()
        if not item.message_type.endswith(":initial"):
            await self.outbox.mark_sent(None, item.id, now)
            return
        if item.process_kind == "negotiation":
            # The ACK's pids with the sent mark (both lost in a crash, if at all: the message
            # is sent again, and the counterparty answers the repeat with the same ACK).
            try:
                ack = parse_message(response.body, ContractNegotiation)
            except InvalidMessageError as exc:
                log.warning("unusable ACK for negotiation %s: %s", item.process_id, exc)
                await self.outbox.mark_sent(None, item.id, now)
                return
            if not await self.outbox.mark_sent_with_ack(
                item.id,
                now,
                negotiation_id=item.process_id,
                provider_pid=ack.provider_pid,
                consumer_pid=ack.consumer_pid,
            ):
                log.warning(
                    "ACK for negotiation %s names other pids (%s, %s)",
                    item.process_id,
                    ack.provider_pid,
                    ack.consumer_pid,
                )
            return
        async with self.stores.db.transaction() as conn:
            await self.outbox.mark_sent(conn, item.id, now)
            try:
                tack = parse_message(response.body, TransferProcess)
                t = await self.stores.transfers.get(conn, item.process_id, for_change=True)
                if t is not None:
                    await self.stores.transfers.update(conn, tsm.record_ack(t, tack, now=now))
            except (InvalidMessageError, InvalidTransitionError) as exc:
                log.warning("unusable ACK for %s %s: %s", item.process_kind, item.process_id, exc)

    async def _retry_or_fail(self, item: OutboxItem, error: str) -> None:
        if item.attempts >= self.policy.max_attempts:
            await self._fail(item, f"gave up after {item.attempts} attempts: {error}")
            return
        delay = self.policy.delay(item.attempts)
        log.info(
            "retrying %s for %s in %.1fs: %s", item.message_type, item.process_id, delay, error
        )
        await self.outbox.mark_retry(
            item.id, error=error, retry_at=self.clock.now() + timedelta(seconds=delay)
        )

    async def _fail(self, item: OutboxItem, error: str) -> None:
        """The message cannot be delivered: terminate the process locally with the reason."""
        log.warning("%s for %s failed: %s", item.message_type, item.process_id, error)
        now = self.clock.now()
        async with self.stores.db.transaction() as conn:
            await self.outbox.mark_failed(conn, item.id, error=error, now=now)
            if item.message_type.endswith("TerminationMessage"):
                return
            if item.process_kind == "negotiation":
                n = await self.stores.negotiations.get(conn, item.process_id, for_change=True)
                if n is None or n.state.is_terminal:
                    return
                await self.stores.negotiations.update(conn, nsm.abandon(n, reason=error, now=now))
                await self.audit.append(
                    actor=n.counterparty_did,
                    event="negotiation.failed",
                    negotiation_id=n.id,
                    details={"reason": error},
                    conn=conn,
                )
            else:
                t = await self.stores.transfers.get(conn, item.process_id, for_change=True)
                if t is None or t.state.is_terminal:
                    return
                await self.stores.transfers.update(conn, tsm.abandon(t, reason=error, now=now))
                await self.audit.append(
                    actor=t.counterparty_did,
                    event="transfer.failed",
                    transfer_id=t.id,
                    details={"reason": error},
                    conn=conn,
                )


@dataclass(frozen=True)
class Answer:
    """A peer's answer to one message: status and (size-capped) body."""

    status: int
    body: bytes


class ResponseTooLarge(aiohttp.ClientError):
    """The peer's answer exceeded ``MAX_RESPONSE_BYTES`` (treated like a transport error)."""


def _reason(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace")
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    if isinstance(reason, list):
        return "; ".join(str(r) for r in reason)[:500]
    return str(parsed)[:500]
