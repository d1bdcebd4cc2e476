"""What the data user SDK raises: one tree under the connector's ``PhemsError``, each class
with the HTTP status it stands for and the one line a user can act on.

PhemsError (connector.errors)
└── ClientError                  a call of the SDK that gave no result (``status``, ``url``,
    │                            ``problem``: the RFC 9457 body when there was one)
    ├── BadRequest (400)         the connector refused the request as it is (a bad query, ...)
    ├── Unauthorized (401)       the management API key is wrong
    ├── PolicyRefused (403)      a policy or credential check failed
    │   └── NegotiationRefused   the provider ended the negotiation (``reason``)
    ├── NotFound (404)           no such dataset, agreement or transfer
    ├── BudgetExhausted (429)    an agreement's count or epsilon budget, or a rate limit
    ├── Unreachable (502)        the data user's connector or a hospital cannot be reached
    ├── InvalidAgreement         an exported agreement whose signatures do not check out
    ├── NotReady (503)           still being prepared (``retry_after`` seconds) or not done in
    │                            the time waited
    └── QueryFailed              a federated query no hospital answered, for mixed reasons
                                 (``answer``: each hospital's status)

A federated query that no hospital answered for one reason raises that reason's class
(every hospital refused: ``PolicyRefused``; out of budget: ``BudgetExhausted``; down:
``Unreachable``), with the answer attached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connector.errors import PhemsError

__all__ = [
    "BadRequest",
    "BudgetExhausted",
    "ClientError",
    "InvalidAgreement",
    "NegotiationRefused",
    "NotFound",
    "NotReady",
    "PhemsError",
    "PolicyRefused",
    "QueryFailed",
    "Unauthorized",
    "Unreachable",
    "from_response",
]


class ClientError(PhemsError):
    status = 500
    code = "client-error"
    title = "The call gave no result"

    def __init__(
        self,
        detail: str,
        *,
        url: str = "",
        problem: Mapping[str, Any] | None = None,
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.url = url
        self.problem = dict(problem or {})
        self.answer = dict(answer or {})


class BadRequest(ClientError):
    status = 400
    code = "bad-request"


class Unauthorized(ClientError):
    status = 401
    code = "unauthenticated"


class PolicyRefused(ClientError):
    status = 403
    code = "policy-refused"


class NegotiationRefused(PolicyRefused):
    code = "negotiation-refused"

    @property
    def reason(self) -> str:
        return self.detail


class NotFound(ClientError):
    status = 404
    code = "not-found"


class BudgetExhausted(ClientError):
    status = 429
    code = "budget-exhausted"


class Unreachable(ClientError):
    status = 502
    code = "unreachable"


class NotReady(ClientError):
    status = 503
    code = "not-ready"

    def __init__(self, detail: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.retry_after = retry_after


class InvalidAgreement(ClientError):
    status = 422
    code = "invalid-agreement"


class QueryFailed(ClientError):
    status = 200
    code = "no-hospital-answered"


BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: PolicyRefused,
    404: NotFound,
    422: BadRequest,
    429: BudgetExhausted,
    502: Unreachable,
    503: NotReady,
    504: Unreachable,
}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return float(value)
    except ValueError:
        return None


def from_response(response: httpx.Response, what: str) -> ClientError:
    """The error for an answer that is not a success: its problem+json ``detail`` when there
    is one, prefixed with what was asked (``what``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem = body if isinstance(body, dict) else {}
    detail = problem.get("detail")
    if not isinstance(detail, str) or not detail:
        detail = response.text[:200] or response.reason_phrase
    message = f"{what}: {detail}"
    url = str(response.request.url)
    kind = BY_STATUS.get(response.status_code)
    if kind is NotReady:
        return NotReady(message, retry_after=_retry_after(response), url=url, problem=problem)
    if kind is None:
        message = f"{what}: HTTP {response.status_code}: {detail}"
        return ClientError(message, url=url, problem=problem)
    return kind(message, url=url, problem=problem)
