"""The loyalty, cards and packages tabs of the customer page: commands and their read model.

Who may do what (API.md: a customer token reaches only its own customer, else 404):

    loyalty   staff award and take points; a customer reads its own ledger and balance
    cards     seed 002, "you or your customer can add up to 2 credit cards": a customer
              adds, lists and removes its own; only staff and services see the tokens
    packages  staff sell, use and deactivate; a customer reads its own

If-Match: adding an entry, a card or a package accepts it (the ledger's, the wallet's
version: 0 before the first) and without it applies to the latest state. Using a
package's session accepts it too, and does not require it: a use is a record added, not a
state the caller chooses, and the package's rules (a session left, not expired, not
deactivated) are decided on its state at the save, so two desks using its last session at
once get one success and one 409, never two. Deactivating and removing a card require it
(428/412). Every POST takes an Idempotency-Key.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from aiohttp import web

from gateway.account_schemas import (
    CardAddedOut,
    CardIn,
    CardOut,
    CardPage,
    LoyaltyEntryIn,
    LoyaltyEntryOut,
    LoyaltyPage,
    LoyaltyRecordedOut,
    PackageIn,
    PackageOut,
    PackagePage,
    PackagesQuery,
    PackageUsedOut,
)
from gateway.auth import Role, requires
from gateway.commands import answer, idempotency_of, service_of
from gateway.keys import SETTINGS_KEY
from gateway.listing import PageQuery, Statement, fetch_page, not_ready
from gateway.operations import operation
from gateway.reads import read_pool
from gateway.requests import (
    json_response,
    optional_if_match,
    parse_query,
    path_uuid,
    read_json,
    require_if_match,
)
from gateway.schemas import CommandOut
from gateway.scopes import customer_scope, require_visible_customer
from gateway.threads import run_sync
from projections.accounts import (
    CustomerCriteria,
    PackageCriteria,
    balance_statement,
    cards_statement,
    entries_statement,
    packages_statement,
    wallet_statement,
)
from projections.base import read_model_schema

__all__ = ["add_routes"]

STAFF: tuple[Role, ...] = ("admin", "staff", "service")
EVERYONE: tuple[Role, ...] = (*STAFF, "customer")
READ_MODEL = "accounts"
CREATED = ("ETag", "X-Event-Position", "Location")
CHANGED = ("ETag", "X-Event-Position")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/customers/{id}/loyalty", record_points)
    r.add_get("/v1/customers/{id}/loyalty", loyalty_tab)
    r.add_post("/v1/customers/{id}/cards", add_card)
    r.add_get("/v1/customers/{id}/cards", cards_tab)
    r.add_delete("/v1/customers/{id}/cards/{card_id}", remove_card)
    r.add_post("/v1/customers/{id}/packages", buy_package)
    r.add_get("/v1/customers/{id}/packages", packages_tab)
    r.add_post("/v1/customers/{id}/packages/{package_id}/use", use_package)
    r.add_post("/v1/customers/{id}/packages/{package_id}/deactivate", deactivate_package)


# ---- loyalty ------------------------------------------------------------------------------


@operation(
    "Award or take loyalty points",
    tag="customer accounts",
    description="`points` positive awards, negative takes. The balance never goes below"
    " zero: a larger debit answers 409 naming the balance (`balance` in the problem too).",
    request=LoyaltyEntryIn,
    responses={201: LoyaltyRecordedOut},
    if_match="optional",
    response_headers=CREATED,
    errors=(409,),
)
@requires(*STAFF)
async def record_points(request: web.Request) -> web.Response:
    customer_id = path_uuid(request)
    expected = optional_if_match(request)
    body = await read_json(request, LoyaltyEntryIn)
    receipt = await run_sync(
        request,
        service_of(request).record_loyalty_points,
        customer_id,
        body.points,
        body.reason,
        expected_version=expected,
        idempotency=await idempotency_of(request),
    )
    location = f"/v1/customers/{customer_id}/loyalty"
    return answer(receipt, LoyaltyRecordedOut, status=201, location=location)


@operation(
    "A customer's loyalty ledger and balance (read model)",
    tag="customer accounts",
    description="Entries newest first. A customer token reads its own.",
    query=PageQuery,
    responses={200: LoyaltyPage},
)
@requires(*EVERYONE)
async def loyalty_tab(request: web.Request) -> web.Response:
    customer_id = require_visible_customer(request, path_uuid(request))
    query = parse_query(request, PageQuery)
    rows, next_cursor = await _page(request, entries_statement, "recorded_at", customer_id, query)
    head = await _one(request, balance_statement, customer_id)
    return json_response(
        LoyaltyPage(
            balance=head["balance"] if head else 0,
            version=head["version"] if head else 0,
            items=[LoyaltyEntryOut.model_validate(row) for row in rows],
            next_cursor=next_cursor,
        )
    )


# ---- cards --------------------------------------------------------------------------------


@operation(
    "Store a card as a payment provider's token (at most 2)",
    tag="customer accounts",
    description="Brand, last 4 digits and expiry with the provider's token; a third card"
    " answers 409. Anything that looks like a full card number is refused (422).",
    request=CardIn,
    responses={201: CardAddedOut},
    if_match="optional",
    response_headers=CREATED,
    errors=(409,),
)
@requires(*EVERYONE)
async def add_card(request: web.Request) -> web.Response:
    customer_id = require_visible_customer(request, path_uuid(request))
    expected = optional_if_match(request)
    body = await read_json(request, CardIn)
    receipt = await run_sync(
        request,
        service_of(request).add_card,
        customer_id,
        **body.model_dump(),
        expected_version=expected,
        idempotency=await idempotency_of(request),
    )
    location = f"/v1/customers/{customer_id}/cards/{receipt.result['card_id']}"
    return answer(receipt, CardAddedOut, status=201, location=location)


@operation(
    "Remove a stored card",
    tag="customer accounts",
    description="If-Match is the wallet's version (`version` of the cards tab).",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED,
)
@requires(*EVERYONE)
async def remove_card(request: web.Request) -> web.Response:
    customer_id = require_visible_customer(request, path_uuid(request))
    card_id = path_uuid(request, "card_id")
    receipt = await run_sync(
        request,
        service_of(request).remove_card,
        customer_id,
        card_id,
        expected_version=require_if_match(request),
    )
    return answer(receipt)


@operation(
    "A customer's stored cards (read model)",
    tag="customer accounts",
    description="A customer token lists its own, without the tokens.",
    query=PageQuery,
    responses={200: CardPage},
)
@requires(*EVERYONE)
async def cards_tab(request: web.Request) -> web.Response:
    customer_id = require_visible_customer(request, path_uuid(request))
    query = parse_query(request, PageQuery)
    rows, next_cursor = await _page(request, cards_statement, "added_at", customer_id, query)
    wallet = await _one(request, wallet_statement, customer_id)
    hide_tokens = customer_scope(request) is not None
    items = [CardOut.model_validate({**row, "token": None} if hide_tokens else row) for row in rows]
    page = CardPage(
        version=wallet["version"] if wallet else 0, items=items, next_cursor=next_cursor
    )
    return json_response(page)


# ---- packages -----------------------------------------------------------------------------


@operation(
    "Sell a customer a prepaid package",
    tag="customer accounts",
    request=PackageIn,
    responses={201: CommandOut},
    response_headers=CREATED,
    errors=(409,),
)
@requires(*STAFF)
async def buy_package(request: web.Request) -> web.Response:
    customer_id = path_uuid(request)
    body = await read_json(request, PackageIn)
    receipt = await run_sync(
        request,
        service_of(request).buy_package,
        customer_id,
        name=body.name,
        sessions=body.sessions,
        service_id=body.service_id,
        expires_at=body.expires_at,
        price=body.price,
        idempotency=await idempotency_of(request),
    )
    location = f"/v1/customers/{customer_id}/packages/{receipt.aggregate_id}"
    return answer(receipt, status=201, location=location)


@operation(
    "Use one session of a package",
    tag="customer accounts",
    description="409 naming why when none is left (`sessions_left`), after the expiry"
    " (`expires_at`) or once deactivated (`status`). If-Match is optional: the rules are"
    " decided on the package as it is saved, so two uses of the last session at once give"
    " one success and one 409.",
    responses={200: PackageUsedOut},
    if_match="optional",
    response_headers=CHANGED,
    errors=(409,),
)
@requires(*STAFF)
async def use_package(request: web.Request) -> web.Response:
    receipt = await run_sync(
        request,
        service_of(request).use_package_session,
        path_uuid(request),
        path_uuid(request, "package_id"),
        expected_version=optional_if_match(request),
        idempotency=await idempotency_of(request),
    )
    return answer(receipt, PackageUsedOut)


@operation(
    "Deactivate a package",
    tag="customer accounts",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED,
    errors=(409,),
)
@requires(*STAFF)
async def deactivate_package(request: web.Request) -> web.Response:
    expected = require_if_match(request)
    receipt = await run_sync(
        request,
        service_of(request).deactivate_package,
        path_uuid(request),
        path_uuid(request, "package_id"),
        expected_version=expected,
        idempotency=await idempotency_of(request),
    )
    return answer(receipt)


@operation(
    "A customer's packages (read model)",
    tag="customer accounts",
    description="Newest first, each with its status now. A customer token reads its own.",
    query=PackagesQuery,
    responses={200: PackagePage},
)
@requires(*EVERYONE)
async def packages_tab(request: web.Request) -> web.Response:
    customer_id = require_visible_customer(request, path_uuid(request))
    query = parse_query(request, PackagesQuery)
    criteria = PackageCriteria(customer_id, tuple(query.status or ()))
    rows, next_cursor = await fetch_page(
        request, READ_MODEL, packages_statement, criteria, query, key_column="bought_at"
    )
    items = [PackageOut.model_validate(row) for row in rows]
    return json_response(PackagePage(items=items, next_cursor=next_cursor))


# ---- helpers ------------------------------------------------------------------------------


async def _page(
    request: web.Request, statement: Statement, key: str, customer_id: UUID, query: PageQuery
) -> tuple[list[dict[str, Any]], str | None]:
    return await fetch_page(
        request, READ_MODEL, statement, CustomerCriteria(customer_id), query, key_column=key
    )


async def _one(request: web.Request, statement: Any, customer_id: UUID) -> dict[str, Any] | None:
    schema = read_model_schema(request.app[SETTINGS_KEY].db_schema, READ_MODEL)
    select, params = statement(schema, customer_id)
    try:
        async with read_pool(request).connection() as connection:
            row: dict[str, Any] | None = await (await connection.execute(select, params)).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise not_ready(READ_MODEL) from None
    return row
