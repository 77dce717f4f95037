"""`GET /asyncapi.json`: the AsyncAPI 3.0 document of the NATS messages, open like the OpenAPI.

Built from the same models the relay serialises (`projections.asyncapi`), once per process.
"""

from __future__ import annotations

import functools

from aiohttp import web

from gateway.operations import Body, operation
from gateway.requests import dumps
from projections.asyncapi import asyncapi_document

__all__ = ["asyncapi_json"]


@functools.cache
def _document() -> bytes:
    return dumps(asyncapi_document())


@operation(
    "The AsyncAPI 3.0 document of the NATS subjects and their messages",
    tag="documentation",
    responses={200: Body(schema={"type": "object"}, description="The AsyncAPI document")},
)
async def asyncapi_json(request: web.Request) -> web.Response:
    """Serve the document (the same as deploy/asyncapi.yaml)."""
    return web.Response(body=_document(), content_type="application/json")
