"""Everything the gateway keeps on the application and on each request, in one place.

Typed `web.AppKey`/`web.RequestKey` instances instead of string keys, so `app[KEY]` has a
type and a typo is a NameError. They live apart from the modules that fill them so that
handlers (which `routes.py` imports) can read them without importing `app.py`.

    app[SETTINGS_KEY]    the settings object given to create_app
    app[SERVICE_KEY]     the domain application (None in framework-only tests)
    app[REGISTRY_KEY]    this app's Prometheus registry (add your own metrics to it)
    app[METRICS_KEY]     the HTTP request counter and latency histogram
    app[EXECUTOR_KEY]    the bounded thread pool for synchronous calls (set at startup)
    app[VERIFIER_KEY]    the bearer-token verifier built from settings.jwt_secret
    app[READINESS_KEY]   the named probes /readyz runs
    app[OPENAPI_KEY]     the serialised OpenAPI document (built at startup)
    request[REQUEST_ID_KEY]  the accepted or generated X-Request-ID
    request[PRINCIPAL_KEY]   the verified token's principal (absent on open routes)
    request[ACTOR_KEY]       the principal's sub, for the access log
    request[PARSED_JSON_KEY] the JSON body as parsed once (`gateway.requests.parse_json`)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from gateway.auth import Principal, TokenVerifier
    from gateway.breaker import DatabaseBreaker
    from gateway.observability import HttpMetrics
    from gateway.reads import ProgressWatcher
    from gateway.requests import ParsedJson

__all__ = [
    "ACTOR_KEY",
    "BREAKER_KEY",
    "EXECUTOR_KEY",
    "METRICS_KEY",
    "OPENAPI_KEY",
    "PARSED_JSON_KEY",
    "PRINCIPAL_KEY",
    "PROGRESS_KEY",
    "READINESS_KEY",
    "READ_POOL_KEY",
    "REGISTRY_KEY",
    "REQUEST_ID_KEY",
    "RESPONSE_STARTED_KEY",
    "SCRAPE_HOOKS_KEY",
    "SERVICE_KEY",
    "SETTINGS_KEY",
    "VERIFIER_KEY",
    "GatewaySettings",
    "ReadinessCheck",
]

ReadinessCheck = Callable[[], Awaitable[bool]]
"""An async probe of one backing service: True when reachable (raising counts as down)."""


class GatewaySettings(Protocol):
    """The part of `infrastructure.settings.Settings` that create_app reads.

    Read-only properties, so a settings class with narrower types (a Literal, a
    constrained int) still satisfies it.
    """

    @property
    def jwt_secret(self) -> SecretStr | None: ...

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def body_timeout_seconds(self) -> float: ...

    @property
    def thread_pool_size(self) -> int: ...

    @property
    def database_url(self) -> str | None: ...

    @property
    def db_schema(self) -> str: ...


# The service's class belongs to the domain and is still being written: handlers may
# narrow it with a cast until the lead tightens this key's type.
SERVICE_KEY: web.AppKey[Any] = web.AppKey("service")
SETTINGS_KEY: web.AppKey[GatewaySettings] = web.AppKey("settings")
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
METRICS_KEY: web.AppKey[HttpMetrics] = web.AppKey("metrics")
EXECUTOR_KEY = web.AppKey("executor", ThreadPoolExecutor)
VERIFIER_KEY: web.AppKey[TokenVerifier] = web.AppKey("token_verifier")
READINESS_KEY: web.AppKey[Mapping[str, ReadinessCheck]] = web.AppKey("readiness_checks")
OPENAPI_KEY = web.AppKey("openapi_document", bytes)
BREAKER_KEY: web.AppKey[DatabaseBreaker] = web.AppKey("database_breaker")
READ_POOL_KEY: web.AppKey[AsyncConnectionPool[Any]] = web.AppKey("read_pool")
PROGRESS_KEY: web.AppKey[ProgressWatcher] = web.AppKey("progress_watcher")
SCRAPE_HOOKS_KEY: web.AppKey[list[Callable[[], Awaitable[None]]]] = web.AppKey("scrape_hooks")
"""Refreshed before each /metrics scrape (gauges read from the database)."""

REQUEST_ID_KEY = web.RequestKey("request_id", str)
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal")
ACTOR_KEY = web.RequestKey("actor", str)
PARSED_JSON_KEY: web.RequestKey[ParsedJson] = web.RequestKey("parsed_json")
# Set once the response headers are on the wire: after that an error can no longer be
# answered with a problem document, only by dropping the connection.
RESPONSE_STARTED_KEY = web.RequestKey("response_started", bool)
