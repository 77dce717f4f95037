"""`python -m gateway`: serve the HTTP API on the configured host and port.

It only wires: settings from the environment, logging, the service on the configured
database, readiness probes for the backing services, then `web.run_app`. It starts no
servers: `customers run` starts local PostgreSQL and NATS first and passes their URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from gateway.app import create_app
from gateway.health import nats_check, postgres_check
from gateway.keys import ReadinessCheck

__all__ = ["main"]


def main() -> None:
    """Load settings, build the service and serve until SIGINT or SIGTERM."""
    # Imported here so that importing the gateway (tests, tooling) reads no environment.
    from infrastructure.eventstore import build_service_once_reachable
    from infrastructure.logs import configure_logging
    from infrastructure.settings import load_settings
    from projections.duplicate_queries import attach_duplicate_lookup

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    checks: dict[str, ReadinessCheck] = {}
    if settings.database_url is not None:
        checks["postgres"] = postgres_check(settings.database_url)
    if settings.nats_url is not None:
        checks["nats"] = nats_check(settings.nats_url)
    # Started before its database (a reboot, `compose up`): wait for it rather than exit.
    service = build_service_once_reachable(settings)
    assert service is not None  # without a stop event it only returns a service
    attach_duplicate_lookup(service, settings.db_schema)
    app = create_app(settings, service=service, readiness_checks=checks)
    # First in, so last out: the pool closes after the thread pool has drained its calls.
    app.cleanup_ctx.insert(0, _closing(service.close))
    # Our access line (with route, actor and request id) replaces aiohttp's.
    web.run_app(app, host=settings.http_host, port=settings.http_port, access_log=None, print=None)


def _closing(close: Callable[[], Any]) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that closes the service (its connection pool) after the last request."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(close)

    return context


if __name__ == "__main__":
    main()
