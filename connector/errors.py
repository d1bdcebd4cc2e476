"""The connector's exception tree. Domain code raises these; each class knows its HTTP status.

PhemsError (500)
├── ConfigurationError (500)       a setting or file the connector cannot use
├── NotFoundError (404)            unknown id, or a caller who is not a party
├── BadRequestError (400)          malformed or invalid input
│   ├── InvalidMessageError        a DSP message that does not parse / validate
│   ├── InvalidTransitionError     a message not allowed in the process' current state
│   └── PolicyDefinitionError      a policy with unknown operands or bad structure
├── AuthenticationError (401)      missing, forged, expired, replayed or misaddressed token
├── ForbiddenError (403)           authenticated, but a policy / credential check failed
│   └── PolicyViolationError       names the failed constraint
├── ConflictError (409)            state on our side forbids the operation
├── LimitExceededError (429)       an agreement's count or epsilon budget, or a rate limit,
│                                  is used up (names it; Retry-After when it frees up)
├── NotInstalledError (501)        no fulfilment is installed for the transfer's format
├── UpstreamError (502)            a peer or FHIR server failed; keeps the URL
│   └── FhirSourceError            the FHIR source failed after retries
└── UnavailableError (503)         not possible yet or not now; ``retry_after`` seconds (or None)
    ├── NotReadyError              the data are still being prepared (a job runs)
    ├── ModelNotReadyError         no synthesizer fitted for this data version yet (a fit runs)
    └── ModelRejectedError         the fitted synthesizer misses the hospital's minimum quality
                                   or privacy levels, so it is not served (no retry time)

``headers()`` adds what the answer must carry (``Retry-After``).
"""

from __future__ import annotations


class PhemsError(Exception):
    status: int = 500
    code: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str]:
        return {}


class ConfigurationError(PhemsError):
    code = "configuration-error"
    title = "Configuration error"


class NotFoundError(PhemsError):
    status = 404
    code = "not-found"
    title = "Not found"


class BadRequestError(PhemsError):
    status = 400
    code = "bad-request"
    title = "Bad request"


class InvalidMessageError(BadRequestError):
    code = "invalid-message"
    title = "Invalid message"


class InvalidTransitionError(BadRequestError):
    code = "invalid-transition"
    title = "Invalid state transition"


class PolicyDefinitionError(BadRequestError):
    code = "invalid-policy"
    title = "Invalid policy"


class AuthenticationError(PhemsError):
    status = 401
    code = "unauthenticated"
    title = "Authentication failed"


class ForbiddenError(PhemsError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class PolicyViolationError(ForbiddenError):
    code = "policy-violation"
    title = "Policy constraint not satisfied"


class ConflictError(PhemsError):
    status = 409
    code = "conflict"
    title = "Conflict"


class LimitExceededError(PhemsError):
    status = 429
    code = "limit-exceeded"
    title = "Limit exceeded"

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class NotInstalledError(PhemsError):
    status = 501
    code = "not-installed"
    title = "Fulfilment not installed"


class UpstreamError(PhemsError):
    status = 502
    code = "upstream-error"
    title = "Upstream service failed"

    def __init__(self, detail: str, *, url: str = "") -> None:
        super().__init__(f"{detail} ({url})" if url else detail)
        self.url = url


class FhirSourceError(UpstreamError):
    code = "fhir-source-error"
    title = "FHIR source failed"


class UnavailableError(PhemsError):
    """Answer with 503 and, when ``retry_after`` is set, a ``Retry-After`` header (seconds)."""

    status = 503
    code = "unavailable"
    title = "Not available yet"

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class NotReadyError(UnavailableError):
    code = "not-ready"
    title = "Not ready yet"


class ModelNotReadyError(UnavailableError):
    code = "synthetic-model-not-ready"
    title = "Synthetic data model not fitted yet"


class ModelRejectedError(UnavailableError):
    code = "synthetic-model-rejected"
    title = "Synthetic data model below the minimum quality or privacy"
