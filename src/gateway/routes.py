"""Every route of the gateway, one line each: the table to read to know what it serves.

The framework's routes are here; each resource module adds its own block below them
(e.g. `customers.add_routes(app)`), so this file stays the one index of the API.
"""

from __future__ import annotations

from aiohttp import web

from gateway import (
    accounts,
    appointments,
    asyncapi,
    audit,
    billing,
    conversations,
    customers,
    docs,
    duplicates,
    erasure,
    export,
    files,
    health,
    history,
    imports,
    merge,
    observability,
    pets,
    portal,
    search,
    tickets,
)

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    """Register every route on `app`."""
    # Operations: open, for orchestrators and scrapers.
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", observability.metrics_handler)
    # Documentation: open, and served from local files only.
    app.router.add_get("/openapi.json", docs.openapi_document)
    app.router.add_get("/asyncapi.json", asyncapi.asyncapi_json)
    app.router.add_get("/docs", docs.docs_page)
    app.router.add_static(docs.DOCS_STATIC_PREFIX, docs.swagger_ui_dir())
    # Resources: add each resource module's routes here.
    # Fixed paths under /v1/customers/ first, before `{id}` could claim their names.
    imports.add_routes(app)
    export.add_routes(app)
    customers.add_routes(app)
    erasure.add_routes(app)
    merge.add_routes(app)
    appointments.add_routes(app)
    tickets.add_routes(app)
    pets.add_routes(app)
    conversations.add_routes(app)
    files.add_routes(app)
    accounts.add_routes(app)
    billing.add_routes(app)
    portal.add_routes(app)
    search.add_routes(app)
    history.add_routes(app)
    duplicates.add_routes(app)
    audit.add_routes(app)
