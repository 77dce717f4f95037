"""The customer resource: registration, profile, lifecycle and the parts of the record.

Each handler only translates: it validates the body, checks who may see the customer,
calls one service method in the thread pool and answers with ETag, X-Event-Position
and, for what it created, Location. Refusals come back from the domain as exceptions.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.service import Receipt
from gateway import pets
from gateway.auth import STAFF, requires
from gateway.commands import CHANGED_HEADERS, CREATED_HEADERS, answer, idempotency_of, service_of
from gateway.merge import MergedAwayOut, merged_away
from gateway.operations import operation
from gateway.pets import CustomerWithPetsOut
from gateway.problems import FieldError, Problem
from gateway.representations import customer_out, event_out
from gateway.requests import (
    command_headers,
    json_response,
    optional_if_match,
    parse_query,
    path_uuid,
    read_json,
    require_if_match,
)
from gateway.schemas import (
    AddressIn,
    BlockIn,
    CommandOut,
    ContactIn,
    CreditIn,
    CustomerOut,
    CustomerPatch,
    CustomerRegistration,
    EventsPage,
    KeyCustodyIn,
    NoteIn,
    PriceIn,
    RegisteredOut,
    SystemIn,
    SystemPatch,
)
from gateway.scopes import self_service
from gateway.tabs import Tab, tab_customer
from gateway.threads import run_sync
from infrastructure.eventstore import event_positions

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/customers", register)
    r.add_get("/v1/customers/{id}", get_customer)
    r.add_patch("/v1/customers/{id}", patch_customer)
    r.add_delete("/v1/customers/{id}", delete_customer)
    r.add_post("/v1/customers/{id}/restore", restore_customer)
    r.add_post("/v1/customers/{id}/block", block_customer)
    r.add_post("/v1/customers/{id}/unblock", unblock_customer)
    r.add_get("/v1/customers/{id}/events", customer_events)
    r.add_post("/v1/customers/{id}/notes", add_note)
    r.add_delete("/v1/customers/{id}/notes/{part_id}", remove_note)
    r.add_post("/v1/customers/{id}/contacts", add_contact)
    r.add_delete("/v1/customers/{id}/contacts/{part_id}", remove_contact)
    r.add_post("/v1/customers/{id}/addresses", add_address)
    r.add_delete("/v1/customers/{id}/addresses/{part_id}", remove_address)
    r.add_post("/v1/customers/{id}/systems", install_system)
    r.add_patch("/v1/customers/{id}/systems/{part_id}", change_system)
    r.add_delete("/v1/customers/{id}/systems/{part_id}", remove_system)
    r.add_put("/v1/customers/{id}/keys", hand_keys)
    r.add_put("/v1/customers/{id}/prices/{service_id}", set_price)
    r.add_post("/v1/customers/{id}/credits", add_credit)


# ---- registration and the record ----------------------------------------------------------


@operation(
    "Register a customer",
    tag="customers",
    request=CustomerRegistration,
    responses={201: RegisteredOut},
    response_headers=CREATED_HEADERS,
)
@requires(*STAFF)
async def register(request: web.Request) -> web.Response:
    body = await read_json(request, CustomerRegistration)
    receipt = await run_sync(
        request,
        service_of(request).register_customer,
        body.model_dump(exclude_none=True),
        await idempotency_of(request),
    )
    location = f"/v1/customers/{receipt.aggregate_id}"
    return answer(receipt, RegisteredOut, status=201, location=location)


class CustomerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    as_of: AwareDatetime | None = None
    """The state at this moment (RFC 3339 with an offset)."""
    version: int | None = Field(default=None, ge=1)
    """The state at this version."""


@operation(
    "Get a customer, now or as it was",
    tag="customers",
    description="For a pet-care business (CUSTOMERS_BUSINESS_TYPE=pet_care) the current state"
    " also lists `pets`, from the pets read model (not with `version` or `as_of`)."
    " A merged customer answers 308 with the survivor's `Location`.",
    query=CustomerQuery,
    responses={200: CustomerWithPetsOut, 308: MergedAwayOut},
    response_headers=("ETag", "Location"),
)
async def get_customer(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, CustomerQuery)
    service = service_of(request)
    past = query.version is not None or query.as_of is not None
    customer = await run_sync(
        request,
        service.customer_as_it_was if past else service.get_customer,
        customer_id,
        version=query.version,
        as_of=query.as_of,
    )
    if customer.merged_into is not None:
        away = merged_away(customer)
        return json_response(away, status=308, headers={"Location": away.location})
    body: Any = customer_out(customer)
    if pets.shows_pets(request.app) and not past:
        body = {
            **body.model_dump(mode="json"),
            "pets": await pets.current_pets(request, customer_id),
        }
    return json_response(body, headers={"ETag": f'"{customer.version}"'})


@operation(
    "Change profile fields (JSON merge patch)",
    tag="customers",
    request=CustomerPatch,
    responses={200: CustomerOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF, "customer")
async def patch_customer(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    expected = require_if_match(request)
    patch = await read_json(request, CustomerPatch)
    changes = patch.model_dump(exclude_unset=True)
    consent_channel = changes.pop("consent_channel", None) or "staff"
    consent_channel = self_service(request, changes) or consent_channel
    service = service_of(request)

    def change_and_read() -> tuple[Receipt, Any]:
        receipt = service.change_profile(
            customer_id, changes, expected_version=expected, consent_channel=consent_channel
        )
        return receipt, service.get_customer(customer_id, version=receipt.version)

    receipt, customer = await run_sync(request, change_and_read)
    return json_response(
        customer_out(customer),
        headers=command_headers(version=receipt.version, position=receipt.position),
    )


@operation(
    "Soft-delete a customer",
    tag="customers",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def delete_customer(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="required")
    return answer(await tab.run("delete_customer", idempotent=False))


@operation(
    "Undo a soft delete",
    tag="customers",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def restore_customer(request: web.Request) -> web.Response:
    return await _transition(request, "restore_customer")


@operation(
    "Block a customer from logging in",
    tag="customers",
    request=BlockIn,
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def block_customer(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="required")
    body = await read_json(request, BlockIn, allow_empty=True)
    return answer(await tab.run("block_customer", body.reason))


@operation(
    "Let a blocked customer log in again",
    tag="customers",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def unblock_customer(request: web.Request) -> web.Response:
    return await _transition(request, "unblock_customer")


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = None


@operation(
    "The customer's raw event stream, for audit",
    tag="audit",
    query=EventsQuery,
    responses={200: EventsPage},
)
@requires("admin", "service")
async def customer_events(request: web.Request) -> web.Response:
    customer_id = path_uuid(request)
    query = parse_query(request, EventsQuery)
    after = _decode_cursor(query.cursor)
    service = service_of(request)

    def read_page() -> EventsPage:
        events = [e for e in service.customer_events(customer_id) if e.originator_version > after]
        page = events[: query.limit]
        positions = event_positions(service, customer_id)
        more = len(events) > query.limit
        return EventsPage(
            items=[event_out(e, positions.get(e.originator_version, 0)) for e in page],
            next_cursor=_encode_cursor(page[-1].originator_version) if more else None,
        )

    return json_response(await run_sync(request, read_page))


# ---- parts of the record --------------------------------------------------------------------


@operation(
    "Add a note (urgent notes list first)",
    tag="customer parts",
    request=NoteIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
)
@requires(*STAFF)
async def add_note(request: web.Request) -> web.Response:
    body = await read_json(request, NoteIn)
    return await _add_part(request, "notes", "note_id", "add_note", body.text, body.urgent)


@operation(
    "Add a site contact",
    tag="customer parts",
    request=ContactIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
)
@requires(*STAFF)
async def add_contact(request: web.Request) -> web.Response:
    body = await read_json(request, ContactIn)
    return await _add_part(request, "contacts", "contact_id", "add_contact", body.model_dump())


@operation(
    "Add a delivery, billing or site address",
    tag="customer parts",
    request=AddressIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
)
@requires(*STAFF)
async def add_address(request: web.Request) -> web.Response:
    body = await read_json(request, AddressIn)
    return await _add_part(request, "addresses", "address_id", "add_address", body.model_dump())


@operation(
    "Record installed equipment (the secret is write-only)",
    tag="customer parts",
    request=SystemIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
)
@requires(*STAFF)
async def install_system(request: web.Request) -> web.Response:
    body = await read_json(request, SystemIn)
    return await _add_part(
        request, "systems", "system_id", "install_system", body.model_dump(exclude_none=True)
    )


@operation(
    "Add a customer credit",
    tag="customer parts",
    request=CreditIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
)
@requires(*STAFF)
async def add_credit(request: web.Request) -> web.Response:
    body = await read_json(request, CreditIn)
    return await _add_part(request, "credits", "credit_id", "add_credit", body.amount, body.reason)


@operation(
    "Change installed equipment",
    tag="customer parts",
    request=SystemPatch,
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def change_system(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="part_id", if_match="required")
    body = await read_json(request, SystemPatch)
    changes = body.model_dump(exclude_unset=True)
    return answer(await tab.run("change_system", changes, idempotent=False))


@operation(
    "Remove a note",
    tag="customer parts",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def remove_note(request: web.Request) -> web.Response:
    return await _remove_part(request, "remove_note")


@operation(
    "Remove a site contact",
    tag="customer parts",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def remove_contact(request: web.Request) -> web.Response:
    return await _remove_part(request, "remove_contact")


@operation(
    "Remove an address",
    tag="customer parts",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def remove_address(request: web.Request) -> web.Response:
    return await _remove_part(request, "remove_address")


@operation(
    "Remove installed equipment",
    tag="customer parts",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def remove_system(request: web.Request) -> web.Response:
    return await _remove_part(request, "remove_system")


@operation(
    "Record who holds the customer's keys",
    tag="customer parts",
    request=KeyCustodyIn,
    responses={200: CommandOut},
    if_match="optional",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def hand_keys(request: web.Request) -> web.Response:
    tab = Tab.of(request)
    body = await read_json(request, KeyCustodyIn)
    receipt = await tab.run(
        "hand_keys_to",
        body.holder_staff_id,
        body.location,
        expected_version=optional_if_match(request),  # after the body, as it always was
        idempotent=False,
    )
    return answer(receipt)


@operation(
    "Set the customer's own price for a service",
    tag="customer parts",
    request=PriceIn,
    responses={200: CommandOut},
    if_match="optional",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def set_price(request: web.Request) -> web.Response:
    tab = Tab.of(request)
    service_id = request.match_info["service_id"]
    if not 1 <= len(service_id) <= 100:
        raise Problem(404, "No such service id.")
    body = await read_json(request, PriceIn)
    receipt = await tab.run(
        "set_custom_price",
        service_id,
        body.price,
        expected_version=optional_if_match(request),  # after the body, as it always was
        idempotent=False,
    )
    return answer(receipt)


# ---- helpers -----------------------------------------------------------------------------------


async def _transition(request: web.Request, command: str) -> web.Response:
    return answer(await Tab.of(request, if_match="required").run(command))


async def _add_part(
    request: web.Request, collection: str, id_name: str, command: str, *args: Any
) -> web.Response:
    # The body was read first: a part's invalid body answers 422 before its If-Match is read.
    tab = Tab.of(request, if_match="optional")
    receipt = await tab.run(command, *args)
    return tab.created(receipt, f"{collection}/{receipt.result[id_name]}")


async def _remove_part(request: web.Request, command: str) -> web.Response:
    tab = Tab.of(request, part="part_id", if_match="required")
    return answer(await tab.run(command, idempotent=False))


def _encode_cursor(version: int) -> str:
    return base64.urlsafe_b64encode(f"v{version}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("v"):
            raise ValueError(raw)
        return int(raw[1:])
    except ValueError:
        raise Problem(
            422,
            "The cursor is not one this service gave out.",
            slug="validation",
            errors=[FieldError(field="cursor", message="not a cursor from a previous page")],
        ) from None
