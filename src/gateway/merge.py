"""Merging duplicate customers and undoing a merge (admin, staff).

`POST /v1/customers/{id}/merge {from: [ids], versions: {id: n}}` merges the customers
named in `from` into the one in the path (the survivor). A merge changes every customer
it names, so each is checked against the version its caller saw: the survivor's in
`If-Match` (as for every state transition: 428 without it), each merged customer's in
`versions` (428 naming `versions.<id>` when one is missing; 412 when one is stale). The
answer lists what moved from whom, loyalty points and stored cards included (and the cards
that stayed on the merged customer, with why: `cards_not_moved`). A merged customer's GET
answers 308 to the survivor; every change to it answers 409 naming the survivor.

`POST /v1/customers/{id}/unmerge {merge_id}` with the survivor's `If-Match` gives each
merged customer back as it was at the merge; 409 naming `loyalty` when the survivor has
spent the points the merge brought (`domain.merge_accounts` has the rules).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import Role, requires
from gateway.commands import answer, idempotency_of, service_of
from gateway.operations import operation
from gateway.problems import FieldError, Problem
from gateway.requests import path_uuid, read_json, require_if_match
from gateway.threads import run_sync

__all__ = ["MergedAwayOut", "add_routes"]

MERGERS: tuple[Role, ...] = ("admin", "staff")
COMMAND_HEADERS = ("ETag", "X-Event-Position")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/customers/{id}/merge", merge_customers)
    app.router.add_post("/v1/customers/{id}/unmerge", unmerge_customers)


class MergeIn(BaseModel):
    """The customers to merge into the survivor, in order, and the version seen of each."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: list[UUID] = Field(alias="from", min_length=1, max_length=20)
    """Merged in this order: an earlier one fills the survivor's empty fields first."""
    versions: dict[UUID, int] = Field(default_factory=dict)
    """The version (ETag) you saw of each customer in `from`."""


class UnmergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    merge_id: UUID


class CardNotMoved(BaseModel):
    """A card left on the merged customer's wallet (still listed and removable there)."""

    card_id: UUID
    reason: Literal["survivor_has_it", "no_room"]
    """`survivor_has_it`: the survivor holds the same card (provider and token);
    `no_room`: the survivor holds 2 cards, the most a customer has."""


class MovedOut(BaseModel):
    """What moved with one customer: part ids, service ids of prices, field names."""

    notes: list[UUID]
    contacts: list[UUID]
    addresses: list[UUID]
    systems: list[UUID]
    credits: list[UUID]
    custom_prices: list[str]
    """Services whose price came with the customer (the survivor's own prices win)."""
    profile: list[str]
    """Profile fields of the survivor that were empty and took the customer's value."""
    key_custody: bool
    reservations: list[str]
    """Unique values that moved: email, mobile_phone, username."""
    appointments: list[UUID]
    tickets: list[UUID]
    pets: list[UUID]
    files: list[UUID]
    interactions: list[UUID]
    chat_messages: list[UUID]
    satisfaction_scores: list[UUID]
    packages: list[UUID]
    invoices: list[UUID]
    payments: list[UUID]
    """Each kind of the customer's own records that moved with it (on an unmerge: back),
    by id; each shows under its new customer in its tab, and is published as
    `crm.<kind>.relinked`."""
    # Defaults: the answer to a keyed merge made before ledgers and wallets moved.
    loyalty_points: int = 0
    """The customer's whole balance, moved to the survivor as one entry on each ledger
    naming the merge (on an unmerge: exactly that, taken back from the survivor);
    published as `crm.loyalty_ledger.points_moved`."""
    cards: list[UUID] = Field(default_factory=list)
    """Stored cards moved to the survivor's wallet, with their ids (oldest first, while it
    holds fewer than 2; on an unmerge: those still on the survivor, back)."""
    cards_not_moved: list[CardNotMoved] = Field(default_factory=list)
    """Cards that stayed on the merged customer's wallet, and why: none is dropped."""


class MergeOut(BaseModel):
    merge_id: UUID
    survivor_id: UUID
    merged_ids: list[UUID]
    moved: dict[UUID, MovedOut]
    """By merged customer."""
    version: int
    """The survivor's version after the merge (its ETag)."""


class UnmergeOut(BaseModel):
    merge_id: UUID
    survivor_id: UUID
    restored_ids: list[UUID]
    moved_back: dict[UUID, MovedOut]
    """By restored customer: what left the survivor with it."""
    version: int


class MergedAwayOut(BaseModel):
    """A merged customer: where it went (the `Location` of the 308)."""

    id: UUID
    merged_into: UUID
    merge_id: UUID
    location: str


@operation(
    "Merge duplicate customers into this one",
    tag="customers",
    description=(
        "If-Match carries the survivor's version; `versions` the version of each customer in "
        "`from`. The survivor's non-empty values win; its empty fields, prices it lacks and "
        "key custody are filled in the order of `from`; parts, credits, every record the "
        "customer owns (appointments, tickets, pets, files, interactions, chat messages, "
        "satisfaction scores, packages, invoices, payments) and the email, mobile phone and "
        "username move to the survivor; the merged customers become tombstones (GET: 308 to "
        "the survivor; a new record for one: 409 naming the survivor). Loyalty points: the "
        "merged balance is added to the survivor's, one entry naming the merge on each "
        "ledger. Stored cards move while the survivor holds fewer than 2; one the survivor "
        "has already or without room stays on the merged customer (`cards_not_moved`)."
    ),
    request=MergeIn,
    responses={200: MergeOut},
    if_match="required",
    response_headers=COMMAND_HEADERS,
)
@requires(*MERGERS)
async def merge_customers(request: web.Request) -> web.Response:
    survivor_id = path_uuid(request)
    expected = require_if_match(request)
    body = await read_json(request, MergeIn)
    missing = [i for i in body.from_ if i not in body.versions]
    if missing:
        raise Problem(
            428,
            "A merge changes every customer it names: send the version you saw of each "
            "in `versions` (the survivor's in If-Match).",
            errors=[
                FieldError(field=f"versions.{i}", message="the version you saw is needed")
                for i in missing
            ],
        )
    versions = {i: body.versions[i] for i in body.from_}
    receipt = await run_sync(
        request,
        service_of(request).merge_customers,
        survivor_id,
        body.from_,
        expected_versions={**versions, survivor_id: expected},
        idempotency=await idempotency_of(request),
    )
    return answer(receipt, MergeOut)


@operation(
    "Undo a merge: each merged customer back as it was at the merge",
    tag="customers",
    description=(
        "What came with each merged customer leaves the survivor (parts by id, prices and "
        "filled fields that still hold the merged values, the cards it brought that are still "
        "there, exactly the loyalty points it brought); what the survivor got since stays. "
        "409 naming `loyalty` when the survivor's balance no longer covers the points the "
        "merge brought (spent since): award them back first."
    ),
    request=UnmergeIn,
    responses={200: UnmergeOut},
    if_match="required",
    response_headers=COMMAND_HEADERS,
)
@requires(*MERGERS)
async def unmerge_customers(request: web.Request) -> web.Response:
    survivor_id = path_uuid(request)
    expected = require_if_match(request)
    body = await read_json(request, UnmergeIn)
    receipt = await run_sync(
        request,
        service_of(request).unmerge_customers,
        survivor_id,
        body.merge_id,
        expected_version=expected,
        idempotency=await idempotency_of(request),
    )
    return answer(receipt, UnmergeOut)


def merged_away(customer: Any) -> MergedAwayOut:
    """The body of a merged customer's 308."""
    return MergedAwayOut(
        id=customer.id,
        merged_into=customer.merged_into,
        merge_id=customer.merge_id,
        location=f"/v1/customers/{customer.merged_into}",
    )
