"""GDPR erasure and the one way an equipment secret leaves the service: admin only.

`POST /v1/customers/{id}/erase` destroys the customer's data key (crypto-shredding, see
`domain.key_ring`), records the erasure and deletes the content of the customer's files
(bytes another customer's file shares stay); a second erasure answers the same and changes
nothing. `POST .../systems/{system_id}/reveal` shows one secret in clear and records who
saw it; the answer is never stored (no Idempotency-Key record: it would keep the secret)
and never cached.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from domain.service import Receipt
from gateway.auth import requires
from gateway.commands import answer, service_of
from gateway.files import file_contents
from gateway.operations import operation
from gateway.portal import LOGIN_GUARD_KEY
from gateway.reads import read_pool
from gateway.requests import command_headers, json_response, path_uuid, require_if_match
from gateway.threads import run_sync

__all__ = ["add_routes"]

COMMAND_HEADERS = ("ETag", "X-Event-Position")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/customers/{id}/erase", erase_customer)
    app.router.add_post("/v1/customers/{id}/systems/{part_id}/reveal", reveal_secret)


class ErasedOut(BaseModel):
    """The erased customer's id and version (an erasure repeated answers the same)."""

    id: UUID
    version: int
    erased: bool


class RevealedSecretOut(BaseModel):
    """One equipment secret in clear; the customer's new version records who saw it."""

    id: UUID
    version: int
    system_id: UUID
    secret: str


@operation(
    "Erase a customer (GDPR): personal data becomes unreadable everywhere",
    tag="customers",
    responses={200: ErasedOut},
    if_match="required",
    response_headers=COMMAND_HEADERS,
)
@requires("admin")
async def erase_customer(request: web.Request) -> web.Response:
    customer_id = path_uuid(request)
    expected = require_if_match(request)
    service = service_of(request)

    def erase() -> tuple[Receipt, list[str]]:
        customer = service.get_customer(customer_id)  # read while the keys exist
        # Customers merged into it are erased with it: their logins' counts go too.
        people = [customer, *service.merged_customers(customer)]
        logins = [v for c in people for v in (c.profile.email, c.profile.username) if v]
        return service.erase_customer(customer_id, expected_version=expected), logins

    receipt, logins = await run_sync(request, erase)
    # The customer's files: their content goes unless another customer's file has it too.
    # A crash before this leaves references that the content sweep collects.
    await run_sync(request, file_contents(request.app).forget_customer, customer_id)
    # The failed-login counts are keyed by a hash of the login: that link goes too.
    for login in logins:
        await request.app[LOGIN_GUARD_KEY].succeeded(read_pool(request), login)
    return answer(receipt, ErasedOut)


@operation(
    "Reveal an equipment secret (recorded: who saw which system's secret)",
    tag="customer parts",
    responses={200: RevealedSecretOut},
    response_headers=COMMAND_HEADERS,
)
@requires("admin")
async def reveal_secret(request: web.Request) -> web.Response:
    customer_id, system_id = path_uuid(request), path_uuid(request, "part_id")
    receipt, secret = await run_sync(
        request, service_of(request).reveal_secret, customer_id, system_id
    )
    body = RevealedSecretOut(
        id=receipt.aggregate_id, version=receipt.version, system_id=system_id, secret=secret
    )
    headers = command_headers(version=receipt.version, position=receipt.position)
    headers["Cache-Control"] = "no-store"
    return json_response(body, headers=headers)
