"""Request ids, the access log and Prometheus metrics.

The request-id middleware is the outermost one: it accepts or makes the id, binds it for
structlog (and, through the auth middleware, as the events' correlation id), and after
the inner middlewares have turned every error into a response it logs one access line
and counts the request under its route TEMPLATE, so `/v1/customers/{id}` is one series
rather than one per customer.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from domain.card_numbers import looks_like_card_number, redact_card_numbers
from gateway.keys import (
    ACTOR_KEY,
    METRICS_KEY,
    REGISTRY_KEY,
    REQUEST_ID_KEY,
    RESPONSE_STARTED_KEY,
    SCRAPE_HOOKS_KEY,
)
from gateway.operations import Body, operation

__all__ = [
    "REQUEST_ID_HEADER",
    "HttpMetrics",
    "accept_request_id",
    "mark_response_started",
    "metrics_handler",
    "request_id",
    "request_id_middleware",
    "route_template",
]

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED_ROUTE = "<unmatched>"
# Probes and scrapes arrive every few seconds; at info level they would drown the log.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# The id ends up in logs and event metadata, so only a short, inert alphabet is trusted.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Status logged when the client went away before an answer (nginx's convention).
_CLIENT_CLOSED = 499

_log = structlog.get_logger("gateway.access")


@dataclass(frozen=True, slots=True)
class HttpMetrics:
    """The request counter and latency histogram of one app, in that app's registry."""

    requests: Counter
    latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HttpMetrics:
        """Register the HTTP metrics (and the process collectors) in `registry`."""
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        labels = ("method", "route", "status")
        return cls(
            requests=Counter("http_requests", "HTTP requests answered.", labels, registry=registry),
            latency=Histogram(
                "http_request_duration_seconds",
                "Time from receiving a request to finishing its response.",
                labels,
                registry=registry,
            ),
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)


def accept_request_id(candidate: str | None) -> str:
    """The client's X-Request-ID when it is sane, else a fresh uuid4 hex.

    One that looks like a card number is not taken (the request is then refused, see
    `gateway.card_refusal`): the id goes into every log line and event of the request."""
    if (
        candidate is not None
        and _SANE_REQUEST_ID.fullmatch(candidate)
        and not looks_like_card_number(candidate)
    ):
        return candidate
    return uuid.uuid4().hex


def request_id(request: web.Request) -> str:
    """The id of this request ('' only if the request-id middleware is not installed)."""
    rid: str = request.get(REQUEST_ID_KEY, "")
    return rid


def route_template(request: web.Request) -> str:
    """The matched route's template (`/v1/customers/{id}`), or a placeholder for no match."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id around the request, then log and count the answer."""
    rid = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = rid
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=rid):
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            # Only reaches here if the error middleware is missing or let a redirect through.
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = _CLIENT_CLOSED
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(request)
            request.app[METRICS_KEY].observe(request.method, route, status, elapsed)
            log = _log.debug if route in _QUIET_ROUTES and status < 400 else _log.info
            log(
                "request",
                method=request.method,
                # A card number in the path is refused, and not written down either.
                path=redact_card_numbers(request.path),
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                actor=request.get(ACTOR_KEY, "anonymous"),
            )


async def mark_response_started(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: echo the request id on every response, errors included.

    Done as the headers are sent rather than in the middleware so that streamed responses
    (exports, files), which send their headers before the handler returns, carry it too.
    """
    rid = request.get(REQUEST_ID_KEY)
    if rid is not None:
        response.headers.setdefault(REQUEST_ID_HEADER, rid)
    # aiohttp would announce its and Python's versions: of use to nobody but an attacker.
    response.headers["Server"] = "customers"
    request[RESPONSE_STARTED_KEY] = True


@operation(
    "Prometheus metrics of this process",
    tag="operations",
    responses={200: Body(media_type="text/plain", schema={"type": "string"})},
)
async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's registry."""
    for refresh in request.app.get(SCRAPE_HOOKS_KEY, ()):
        await refresh()
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
