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
from gateway.auth import EVERYONE, STAFF, requires
from gateway.commands import CHANGED_HEADERS, CREATED_HEADERS, answer
from gateway.listing import PageQuery, Statement, fetch_page, fetch_row
from gateway.operations import operation
from gateway.requests import (
    json_response,
    parse_query,
    read_json,
    require_if_match,
)
from gateway.schemas import CommandOut
from gateway.scopes import customer_scope
from gateway.tabs import Tab, tab_customer
from projections.accounts import (
    CustomerCriteria,
    PackageCriteria,
    balance_statement,
    cards_statement,
    entries_statement,
    packages_statement,
    wallet_statement,
)

__all__ = ["add_routes"]

READ_MODEL = "accounts"


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
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def record_points(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="optional")
    body = await read_json(request, LoyaltyEntryIn)
    receipt = await tab.run("record_loyalty_points", body.points, body.reason)
    return tab.created(receipt, "loyalty", LoyaltyRecordedOut)


@operation(
    "A customer's loyalty ledger and balance (read model)",
    tag="customer accounts",
    description="Entries newest first. A customer token reads its own.",
    query=PageQuery,
    responses={200: LoyaltyPage},
)
@requires(*EVERYONE)
async def loyalty_tab(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, PageQuery)
    rows, next_cursor = await _page(request, entries_statement, "recorded_at", customer_id, query)
    head = await fetch_row(request, READ_MODEL, balance_statement, customer_id)
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
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*EVERYONE)
async def add_card(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="optional")
    body = await read_json(request, CardIn)
    receipt = await tab.run("add_card", **body.model_dump())
    return tab.created(receipt, f"cards/{receipt.result['card_id']}", CardAddedOut)


@operation(
    "Remove a stored card",
    tag="customer accounts",
    description="If-Match is the wallet's version (`version` of the cards tab).",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*EVERYONE)
async def remove_card(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="card_id", if_match="required")
    return answer(await tab.run("remove_card", idempotent=False))


@operation(
    "A customer's stored cards (read model)",
    tag="customer accounts",
    description="A customer token lists its own, without the tokens.",
    query=PageQuery,
    responses={200: CardPage},
)
@requires(*EVERYONE)
async def cards_tab(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, PageQuery)
    rows, next_cursor = await _page(request, cards_statement, "added_at", customer_id, query)
    wallet = await fetch_row(request, READ_MODEL, wallet_statement, customer_id)
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
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def buy_package(request: web.Request) -> web.Response:
    tab = Tab.of(request)
    body = await read_json(request, PackageIn)
    receipt = await tab.run(
        "buy_package",
        name=body.name,
        sessions=body.sessions,
        service_id=body.service_id,
        expires_at=body.expires_at,
        price=body.price,
    )
    return tab.created(receipt, f"packages/{receipt.aggregate_id}")


@operation(
    "Use one session of a package",
    tag="customer accounts",
    description="409 naming why when none is left (`sessions_left`), after the expiry"
    " (`expires_at`) or once deactivated (`status`). If-Match is optional: the rules are"
    " decided on the package as it is saved, so two uses of the last session at once give"
    " one success and one 409.",
    responses={200: PackageUsedOut},
    if_match="optional",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def use_package(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="package_id", if_match="optional")
    return answer(await tab.run("use_package_session"), PackageUsedOut)


@operation(
    "Deactivate a package",
    tag="customer accounts",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def deactivate_package(request: web.Request) -> web.Response:
    require_if_match(request)  # before the ids: a missing If-Match answers 428 first here
    tab = Tab.of(request, part="package_id", if_match="required")
    return answer(await tab.run("deactivate_package"))


@operation(
    "A customer's packages (read model)",
    tag="customer accounts",
    description="Newest first, each with its status now. A customer token reads its own.",
    query=PackagesQuery,
    responses={200: PackagePage},
)
@requires(*EVERYONE)
async def packages_tab(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
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
