"""The app factory that tests and `python -m gateway` both call.

Middlewares run outside in: the request id first (so every answer, errors included, has
it and is logged and counted), then the error middleware (so whatever goes wrong below,
authentication included, becomes a problem document), then authentication (so handlers
only ever run with a verified principal and the actor bound), then the refusal of card
numbers (`gateway.card_refusal`: before any handler, idempotency record or log sees one).
Resources with a lifetime (the thread pool) open and close in `cleanup_ctx`; nothing
connects before startup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.auth import TokenVerifier, auth_middleware
from gateway.breaker import breaker_context, breaker_middleware
from gateway.card_refusal import card_number_middleware
from gateway.docs import cache_openapi
from gateway.keys import (
    METRICS_KEY,
    READINESS_KEY,
    REGISTRY_KEY,
    SERVICE_KEY,
    SETTINGS_KEY,
    VERIFIER_KEY,
    GatewaySettings,
    ReadinessCheck,
)
from gateway.observability import HttpMetrics, mark_response_started, request_id_middleware
from gateway.problems import error_middleware
from gateway.reads import reads_context
from gateway.routes import add_routes
from gateway.threads import executor_context

__all__ = ["create_app"]

_log = structlog.get_logger("gateway")


def create_app(
    settings: GatewaySettings,
    *,
    service: Any = None,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
) -> web.Application:
    """A configured gateway: routes, middlewares, metrics, thread pool and OpenAPI.

    `service` is the domain application the handlers call (None for framework tests);
    whoever built it closes it. `readiness_checks` name the probes `/readyz` runs;
    `extra_routes` are added after the gateway's own (tests use them for probe handlers).
    """
    app = web.Application(
        middlewares=[
            request_id_middleware,
            error_middleware,
            breaker_middleware,
            auth_middleware,
            card_number_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    registry = CollectorRegistry()
    app[SETTINGS_KEY] = settings
    app[SERVICE_KEY] = service
    app[REGISTRY_KEY] = registry
    app[METRICS_KEY] = HttpMetrics.create(registry)
    app[VERIFIER_KEY] = TokenVerifier(settings.jwt_secret)
    app[READINESS_KEY] = dict(readiness_checks or {})
    app.on_response_prepare.append(mark_response_started)
    app.cleanup_ctx.append(executor_context)
    app.cleanup_ctx.append(reads_context)
    if "postgres" in app[READINESS_KEY]:
        app.cleanup_ctx.append(breaker_context(app[READINESS_KEY]["postgres"]))
    app.on_startup.append(cache_openapi)
    app.on_startup.append(_warn_without_secret)
    add_routes(app)
    app.router.add_routes(extra_routes)
    return app


async def _warn_without_secret(app: web.Application) -> None:
    if not app[VERIFIER_KEY].configured:
        _log.warning("jwt_secret_missing", effect="every protected route answers 401")
