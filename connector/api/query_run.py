"""One aggregate query from the catalog UI: the body checked as JSON, sent through this
connector's data plane client (``DataPuller``, as ``POST /management/transfers/{id}/data``), and
the answer read as a table and charts. Whatever stops it is a ``QueryFailure``: a status, a
headline and the words of whoever refused (the hospital's problem ``detail``), for the page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Final

from connector.api.answer_view import Answer, read_answer
from connector.errors import PhemsError, UpstreamError
from connector.exchange.pull import DataPuller
from connector.policy import validate_policy
from connector.policy.model import Constraint, ConstraintNode
from connector.policy.vocab import LeftOperand, Logic, Operator

MAX_ANSWER: Final = 4 << 20  # a MeasureReport is a few KiB; more is not one
MAX_DETAIL: Final = 2000
HEADLINES: Final = {
    400: (
        "The hospital refused the query",
        "The query does not fit what the hospital's data can answer. The message starts with "
        "the place in the query to change (see docs/aggregate-queries.md).",
    ),
    401: ("The hospital did not accept this connector's token", "Try again in a moment."),
    403: (
        "The agreement's conditions do not permit this query",
        "The hospital named the condition that failed: change the query (its purpose, say) "
        "or negotiate an agreement that permits it.",
    ),
    404: ("The hospital does not know this transfer", "Start a new transfer."),
    409: ("The transfer cannot be used now", "Start a new transfer under the agreement."),
    429: (
        "Refused: a limit is used up",
        "The agreement's budget (number of queries or privacy budget) or the hospital's rate "
        "limit is used up.",
    ),
    501: ("The hospital cannot answer this kind of transfer", ""),
    502: (
        "The hospital's connector could not be reached",
        "Nothing was spent. Try again later, or ask the hospital whether its connector is up.",
    ),
    503: ("The hospital is preparing its data", "Nothing was spent."),
}


class QueryFailure(Exception):
    def __init__(self, status: int, title: str, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.hint = status, title, detail, hint

    @classmethod
    def answered(
        cls,
        status: int,
        detail: str,
        headers: Mapping[str, str] | None = None,
        *,
        headlines: Mapping[int, tuple[str, str]] = HEADLINES,
    ) -> QueryFailure:
        """A refusal with the status it came with (the hospital's, or this connector's), in
        ``headlines``' words (a query's by default)."""
        title, hint = headlines.get(status, (f"The hospital's connector answered {status}", ""))
        retry = {k.lower(): v for k, v in (headers or {}).items()}.get("retry-after", "")
        if retry.isdigit():
            hint = f"{hint} Try again in {retry} seconds.".strip()
        return cls(status, title, detail[:MAX_DETAIL] or "No reason was given.", hint)


def parse_ccdl(text: str) -> dict[str, Any]:
    """A pasted or uploaded query: checked to be a JSON object (the hospital checks the rest)."""
    if not text.strip():
        raise QueryFailure(400, "No query", "Paste a CCDL query, or choose a file.")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QueryFailure(
            400,
            "The query is not JSON",
            f"line {exc.lineno}, column {exc.colno}: {exc.msg}",
            "A CCDL query is a JSON object (docs/aggregate-queries.md has an example).",
        ) from None
    if not isinstance(parsed, dict):
        kind = {list: "an array", str: "a string", bool: "true or false"}.get(
            type(parsed), "a number" if isinstance(parsed, int | float) else "null"
        )
        raise QueryFailure(
            400, "The query is not a CCDL query", f"a CCDL query is a JSON object, not {kind}"
        )
    return parsed


def encode(query: Mapping[str, Any]) -> bytes:
    return json.dumps(query, indent=2, ensure_ascii=False).encode()


async def read_capped(chunks: AsyncIterator[bytes]) -> bytes:
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > MAX_ANSWER:
            raise QueryFailure(502, "The hospital's answer is too large", "not an aggregate answer")
    return bytes(data)


def problem_detail(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else ""


async def run_query(puller: DataPuller, tid: str, body: bytes) -> Answer:
    try:
        pulled = await puller.pull(tid, body=body, media_type="application/json", params={})
    except PhemsError as exc:
        raise QueryFailure.answered(exc.status, exc.detail, exc.headers()) from None
    data = await read_capped(pulled.chunks)
    if pulled.status != 200:
        raise QueryFailure.answered(pulled.status, problem_detail(data), pulled.headers)
    try:
        return read_answer(json.loads(data))
    except (ValueError, UpstreamError):
        raise QueryFailure.answered(
            502, "the hospital's answer is not a FHIR MeasureReport"
        ) from None


def agreed_purpose(agreement: Mapping[str, Any]) -> str:
    """The purpose an agreement's permissions name with ``eq`` (directly or inside an ``and``),
    read by the policy engine; "" when it names none or several."""
    try:
        policy = validate_policy(agreement)
    except PhemsError:
        return ""
    found = {
        c.right_operand
        for rule in policy.permissions
        for c in _conjuncts(rule.constraints)
        if c.left_operand is LeftOperand.PURPOSE
        and c.operator is Operator.EQ
        and isinstance(c.right_operand, str)
    }
    return str(found.pop()) if len(found) == 1 else ""


def _conjuncts(nodes: tuple[ConstraintNode, ...]) -> Iterator[Constraint]:
    for node in nodes:
        if isinstance(node, Constraint):
            yield node
        elif node.logic is Logic.AND:
            yield from _conjuncts(node.constraints)
