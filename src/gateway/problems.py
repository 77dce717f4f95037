"""RFC 9457 problem details, and the middleware that turns every failure into one.

Every error the gateway sends is `application/problem+json` with a `type` URI under
`https://customers.example/problems/<slug>` (one scheme for all), the status's `title`,
a `detail` for people, the request path as `instance`, the `request_id` to quote, and for
field errors `errors: [{"field", "message"}]`. Handlers raise `Problem` directly; domain
errors, pydantic errors and aiohttp's HTTP exceptions are mapped here, in one place:

    Problem                          as given
    NotFoundError                    404 not-found
    ConflictError and subclasses     409 (field named; an invalid transition lists `allowed`,
                                     a debit past the loyalty balance gives `balance`)
    VersionMismatchError             412 version-mismatch
    RuleViolationError, DomainError  422 rule-violation (field named)
    pydantic ValidationError         422 validation-failed, one entry per error
    aiohttp HTTPException >= 400     its own status (404 route, 405, 413, ...)
    database unreachable             503 service-unavailable, Retry-After: 5
    database read-only               503 service-unavailable, Retry-After: 5
    anything else                    500 internal-error, logged, nothing internal echoed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Literal

import orjson
import psycopg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, ValidationError

from domain import errors as domain
from domain.card_numbers import redact_card_numbers
from domain.loyalty import InsufficientPointsError
from gateway.keys import REQUEST_ID_KEY, RESPONSE_STARTED_KEY
from infrastructure.database import DATABASE_UNAVAILABLE

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_BASE",
    "RETRY_AFTER_SECONDS",
    "FieldError",
    "Problem",
    "ProblemDetails",
    "error_middleware",
    "is_unavailable",
    "problem_from_exception",
    "problem_response",
    "refuses_writes",
    "validation_problem",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://customers.example/problems/"
RETRY_AFTER_SECONDS = 5

_SLUGS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    408: "request-timeout",
    409: "conflict",
    412: "version-mismatch",
    413: "body-too-large",
    422: "validation-failed",
    428: "if-match-required",
    500: "internal-error",
    503: "service-unavailable",
}

_log = structlog.get_logger("gateway.errors")


class FieldError(BaseModel):
    """One field-level complaint; `field` is a dotted path, or null for the whole body."""

    field: str | None
    message: str


class ProblemDetails(BaseModel):
    """The `application/problem+json` body of every error response (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """An HTTP error a handler can raise; rendered as problem+json by the error middleware."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        slug: str | None = None,
        errors: Iterable[FieldError | Mapping[str, str | None]] = (),
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        phrase = HTTPStatus(status).phrase
        super().__init__(detail or phrase)
        self.status = status
        self.title = title or phrase
        self.detail = detail
        self.slug = slug or _SLUGS.get(status) or phrase.lower().replace(" ", "-")
        self.errors = [e if isinstance(e, FieldError) else FieldError(**e) for e in errors]
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})

    @property
    def type(self) -> str:
        """The problem type URI."""
        return PROBLEM_TYPE_BASE + self.slug

    def body(self, request: web.Request | None = None) -> dict[str, Any]:
        """The JSON document, with the request's path and id when given."""
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            doc["detail"] = self.detail
        if request is not None:
            doc["instance"] = redact_card_numbers(request.path)
            doc["request_id"] = request.get(REQUEST_ID_KEY)
        if self.errors:
            doc["errors"] = [e.model_dump() for e in self.errors]
        doc.update(self.extensions)
        return doc


def problem_response(request: web.Request, problem: Problem) -> web.Response:
    """Render `problem` for `request` as an application/problem+json response."""
    response = web.Response(
        status=problem.status,
        body=orjson.dumps(problem.body(request)),
        headers={**problem.headers, "Content-Type": PROBLEM_CONTENT_TYPE},
    )
    if problem.headers.get("Connection", "").lower() == "close":
        response.force_close()  # the header alone does not stop aiohttp keeping it alive
    return response


def validation_problem(
    exc: ValidationError, *, source: Literal["body", "query"] = "body"
) -> Problem:
    """A 422 with one entry per pydantic error, naming each field by its dotted location."""
    noun = "query parameter" if source == "query" else "field"
    entries: list[FieldError] = []
    # Inputs are left out on purpose: they may be passwords or card numbers.
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in error["loc"]) or None
        if error["type"] == "extra_forbidden":
            message = f"unknown {noun}: not allowed"
        else:
            message = error["msg"].removeprefix("Value error, ")
        entries.append(FieldError(field=field, message=message))
    names = ", ".join(sorted({e.field for e in entries if e.field})) or "the request"
    return Problem(422, f"invalid {noun}s: {names}", errors=entries)


def problem_from_exception(exc: Exception) -> Problem:
    """The problem a failure is answered with (see the module docstring for the table)."""
    match exc:
        case Problem():
            return exc
        case domain.NotFoundError():
            return Problem(404, exc.message)
        case domain.ConflictError():
            return _conflict(exc)
        case domain.VersionMismatchError():
            return Problem(412, exc.message, extensions={"current_version": exc.actual})
        case domain.DomainError():
            # RuleViolationError and any refusal the tree may grow: the client's input.
            return Problem(422, exc.message, slug="rule-violation", errors=_field(exc))
        case ValidationError():
            return validation_problem(exc)
        case web.HTTPException():
            return _from_http_exception(exc)
        case _ if is_unavailable(exc) or refuses_writes(exc):
            return Problem(
                503,
                "A backing service is unavailable; retry shortly.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        case _:
            return Problem(500, "An unexpected error occurred; quote the request_id to report it.")


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says storage is unreachable (worth a retry, never the client's fault)."""
    return isinstance(exc, DATABASE_UNAVAILABLE)


def refuses_writes(exc: BaseException) -> bool:
    """Whether `exc` comes from a database that is up but read-only (a standby promoted
    late, a disk-full guard, an operator's `default_transaction_read_only`): retry later.

    Not `is_unavailable`: reads still work, so it must not open the breaker. The event
    store wraps psycopg's error in its own InternalError, so the cause chain is searched.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, psycopg.errors.ReadOnlySqlTransaction):
            return True
        cause = cause.__cause__
    return False


def _field(exc: domain.DomainError) -> list[FieldError]:
    return [FieldError(field=exc.field, message=exc.message)] if exc.field else []


def _conflict(exc: domain.ConflictError) -> Problem:
    match exc:
        case domain.InvalidTransitionError():
            extensions: dict[str, Any] = {
                "current": exc.current,
                "requested": exc.requested,
                "allowed": exc.allowed,
            }
            return Problem(
                409,
                exc.message,
                slug="invalid-transition",
                errors=_field(exc),
                extensions=extensions,
            )
        case domain.UniqueValueTakenError():
            return Problem(409, exc.message, slug="unique-value-taken", errors=_field(exc))
        case domain.ImmutableFieldError():
            return Problem(409, exc.message, slug="immutable-field", errors=_field(exc))
        case InsufficientPointsError():
            return Problem(
                409,
                exc.message,
                slug="insufficient-points",
                errors=_field(exc),
                extensions={"balance": exc.balance},
            )
        case _:
            return Problem(409, exc.message, errors=_field(exc))


def _from_http_exception(exc: web.HTTPException) -> Problem:
    # aiohttp's default text is "404: Not Found": no more than the title, so dropped.
    text = exc.text or ""
    detail = None if text.startswith(f"{exc.status}:") else text.strip() or None
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        detail = f"{exc.method} is not allowed here; allowed: {allowed}"
    headers = {
        k: v for k, v in exc.headers.items() if k.lower() not in {"content-type", "content-length"}
    }
    return Problem(exc.status, detail, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every exception from the inner middlewares and handlers with a problem."""
    try:
        return await handler(request)
    except Exception as exc:
        if request.get(RESPONSE_STARTED_KEY):
            # The status line is already sent: all that is left is to drop the connection.
            _log.exception("error_after_response_started")
            raise
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            # Redirects (a merged customer's 308) are answers, not errors.
            return web.Response(status=exc.status, reason=exc.reason, headers=exc.headers)
        problem = problem_from_exception(exc)
        # A Problem or an HTTP error is worded for the client already: the access line
        # is enough. Anything else is ours to look into.
        if not isinstance(exc, Problem | web.HTTPException):
            if problem.status == 503:
                _log.warning("backing_service_unavailable", error=repr(exc))
            elif problem.status >= 500:
                _log.exception("unhandled_error")
        return problem_response(request, problem)
