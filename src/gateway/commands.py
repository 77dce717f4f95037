"""What every command handler shares: the service, the request's idempotency, the answer.

A command's answer is its result with `ETag`, `X-Event-Position` (and `Location` for what
it created); a replay of an idempotent request says so with `Idempotent-Replayed`.
"""

from __future__ import annotations

import hashlib

from aiohttp import web
from pydantic import BaseModel

from domain.idempotency import idempotency_id
from domain.service import CustomerService, Idempotency, Receipt
from gateway.auth import principal
from gateway.keys import SERVICE_KEY
from gateway.requests import command_headers, idempotency_key, json_response, read_body
from gateway.schemas import CommandOut

__all__ = ["CHANGED_HEADERS", "CREATED_HEADERS", "answer", "idempotency_of", "service_of"]

CHANGED_HEADERS = ("ETag", "X-Event-Position")
"""The headers of a command's answer: its operation's `response_headers`."""
CREATED_HEADERS = (*CHANGED_HEADERS, "Location")
"""The headers of the answer of a command that created something."""


def service_of(request: web.Request) -> CustomerService:
    service: CustomerService = request.app[SERVICE_KEY]
    return service


async def idempotency_of(request: web.Request, *, content: str | None = None) -> Idempotency | None:
    """The request's Idempotency-Key, scoped to the caller, with a fingerprint of its content.

    `content` stands for a body too large to read whole (an upload): its fingerprint, such
    as the file's SHA-256 with its name and declared type, computed as it was received.
    """
    key = idempotency_key(request)
    if key is None:
        return None
    digest = hashlib.sha256(f"{request.method} {request.rel_url}\n".encode())
    digest.update(content.encode() if content is not None else await read_body(request))
    return Idempotency(idempotency_id(principal(request).sub, key), digest.hexdigest())


def answer(
    receipt: Receipt,
    model: type[BaseModel] = CommandOut,
    *,
    status: int = 200,
    location: str | None = None,
) -> web.Response:
    """The command's result as `model`, with ETag, X-Event-Position and Location."""
    headers = command_headers(version=receipt.version, position=receipt.position, location=location)
    if receipt.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(model.model_validate(receipt.result), status=status, headers=headers)
