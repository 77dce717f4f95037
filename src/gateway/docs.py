"""`GET /openapi.json` and a Swagger UI page at `/docs` that needs no internet.

The document is built once at startup (routes cannot change after it), so a model that
cannot produce a schema stops the app from starting instead of failing a request.
Swagger UI's files come from the installed `swagger_ui_bundle` package and are served
under `/docs/static/`: the page works on an air-gapped machine.

That package ships Swagger UI 4.15, which refuses to render a document whose `openapi`
field is not 3.0.x. The page therefore fetches `/openapi.json` itself and shows it with
the version field relabelled; the served document stays 3.1 (JSON Schema 2020-12, as
pydantic writes it). Swagger UI 4 displays pydantic's schemas well enough for reading
and "Try it out".
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from gateway.keys import OPENAPI_KEY
from gateway.openapi import build_openapi
from gateway.operations import Body, operation
from gateway.requests import dumps

__all__ = [
    "DOCS_STATIC_PREFIX",
    "cache_openapi",
    "docs_page",
    "openapi_document",
    "swagger_ui_dir",
]

DOCS_STATIC_PREFIX = "/docs/static"
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Customers API</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js" charset="utf-8"></script>
  <script src="{static}/swagger-ui-standalone-preset.js" charset="utf-8"></script>
  <script>
    // Swagger UI 4 only renders "openapi: 3.0.x": relabel the 3.1 document for display.
    fetch("/openapi.json")
      .then((response) => response.json())
      .then((spec) => {{
        spec.openapi = "3.0.3";
        window.ui = SwaggerUIBundle({{
          spec: spec,
          dom_id: "#swagger-ui",
          deepLinking: true,
          presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
          layout: "StandaloneLayout",
        }});
      }});
  </script>
</body>
</html>
"""


def swagger_ui_dir() -> Path:
    """The directory of the installed Swagger UI distribution."""
    return Path(str(swagger_ui_bundle.swagger_ui_path))


async def cache_openapi(app: web.Application) -> None:
    """`on_startup`: build and serialise the document once, before the app freezes."""
    app[OPENAPI_KEY] = dumps(build_openapi(app))


@operation(
    "The OpenAPI 3.1 document of this API",
    tag="documentation",
    responses={200: Body(schema={"type": "object"}, description="The OpenAPI document")},
)
async def openapi_document(request: web.Request) -> web.Response:
    """Serve the document built at startup."""
    return web.Response(body=request.app[OPENAPI_KEY], content_type="application/json")


@operation(
    "Interactive API documentation (Swagger UI)",
    tag="documentation",
    responses={200: Body(media_type="text/html", schema={"type": "string"})},
)
async def docs_page(request: web.Request) -> web.Response:
    """The Swagger UI page, with its assets served locally."""
    return web.Response(text=_PAGE.format(static=DOCS_STATIC_PREFIX), content_type="text/html")
