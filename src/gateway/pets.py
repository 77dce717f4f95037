"""A customer's pets and their vets: the Pet and Vet tabs of pet-care businesses (seed 002).

The routes exist only when `CUSTOMERS_BUSINESS_TYPE` is `pet_care`: another business has
no pets, so its router answers 404 for them and its OpenAPI document (built from the
routes) does not list them; the customer's GET lists `pets` under the same condition.
Staff add, change (JSON merge patch, If-Match on the pet's version) and remove pets; a
customer token may read its own customer's pets.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from domain.pets import Pet
from gateway.auth import EVERYONE, STAFF, requires
from gateway.commands import CHANGED_HEADERS, CREATED_HEADERS, answer
from gateway.keys import SETTINGS_KEY
from gateway.listing import MAX_LIMIT, PageQuery, fetch_page
from gateway.operations import operation
from gateway.requests import (
    etag,
    json_response,
    parse_query,
    read_json,
)
from gateway.schemas import CommandOut, CustomerOut, LongText, Name, ShortText
from gateway.tabs import Tab, tab_customer
from gateway.text import RequestModel
from projections.pets import PetCriteria, pets_statement

__all__ = ["CustomerWithPetsOut", "PetOut", "add_routes", "current_pets", "shows_pets"]

PhoneText = Annotated[str, Field(max_length=40)]


def shows_pets(app: web.Application) -> bool:
    """Whether this business keeps pets (CUSTOMERS_BUSINESS_TYPE=pet_care)."""
    # Not every GatewaySettings has it (framework tests): the documented default then.
    return bool(getattr(app[SETTINGS_KEY], "business_type", "general") == "pet_care")


def add_routes(app: web.Application) -> None:
    if not shows_pets(app):
        return
    r = app.router
    r.add_post("/v1/customers/{id}/pets", add_pet)
    r.add_get("/v1/customers/{id}/pets", list_pets)
    r.add_get("/v1/customers/{id}/pets/{pet_id}", get_pet)
    r.add_patch("/v1/customers/{id}/pets/{pet_id}", change_pet)
    r.add_delete("/v1/customers/{id}/pets/{pet_id}", remove_pet)


# ---- shapes ------------------------------------------------------------------------------


class VetIn(RequestModel):
    name: ShortText | None = None
    clinic: ShortText | None = None
    phone: PhoneText | None = None
    """Any formatting; stored in E.164 (read in CUSTOMERS_DEFAULT_PHONE_REGION)."""


class PetIn(RequestModel):
    """POST /v1/customers/{id}/pets."""

    name: Name
    species: Name
    """dog, cat, rabbit...: free text."""
    breed: ShortText | None = None
    birthday: date | None = None
    notes: LongText | None = None
    """Care notes: allergies, temperament, feeding."""
    vet: VetIn | None = None


class PetPatch(RequestModel):
    """A JSON merge patch of a pet: the fields given change, null clears (name and species
    cannot be cleared); `vet` merges field by field, `"vet": null` removes the vet."""

    name: Name | None = None
    species: Name | None = None
    breed: ShortText | None = None
    birthday: date | None = None
    notes: LongText | None = None
    vet: VetIn | None = None


class VetOut(BaseModel):
    name: str | None
    clinic: str | None
    phone: str | None


class PetOut(BaseModel):
    id: UUID
    customer_id: UUID
    name: str
    species: str
    breed: str | None
    birthday: date | None
    notes: str | None
    vet: VetOut | None
    added_at: datetime
    updated_at: datetime
    version: int


class CustomerWithPetsOut(CustomerOut):
    """A customer; a pet-care business's also lists its pets."""

    pets: list[PetOut] = Field(
        default_factory=list,
        description="Pet care only (absent otherwise): the customer's current pets, from the"
        " pets read model, in the order they were added (the first 200).",
    )


class PetPage(BaseModel):
    items: list[PetOut]
    next_cursor: str | None


class PetsQuery(PageQuery):
    """Paging of a customer's pets, in the order they were added."""


# ---- handlers ----------------------------------------------------------------------------


@operation(
    "Add a pet (with its vet) to a customer",
    tag="pets",
    description="Only for pet-care businesses. 409 when the customer is deleted or erased.",
    request=PetIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def add_pet(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="optional")
    body = await read_json(request, PetIn)
    receipt = await tab.run("add_pet", body.model_dump(exclude_none=True))
    return tab.created(receipt, f"pets/{receipt.aggregate_id}")


@operation(
    "Change a pet (JSON merge patch)",
    tag="pets",
    request=PetPatch,
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def change_pet(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="pet_id", if_match="required")
    body = await read_json(request, PetPatch)
    return answer(await tab.run("change_pet", body.model_dump(exclude_unset=True)))


@operation(
    "Remove a pet",
    tag="pets",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def remove_pet(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="pet_id", if_match="required")
    return answer(await tab.run("remove_pet", idempotent=False))


@operation(
    "Get a pet now (event store), with its ETag",
    tag="pets",
    responses={200: PetOut},
    response_headers=("ETag",),
)
@requires(*EVERYONE)
async def get_pet(request: web.Request) -> web.Response:
    pet = await Tab.of(request, part="pet_id").get("get_pet")
    return json_response(_pet_out(pet), headers={"ETag": etag(pet.version)})


@operation(
    "A customer's pets (read model)",
    tag="pets",
    description="In the order they were added. A customer token lists only its own.",
    query=PetsQuery,
    responses={200: PetPage},
)
@requires(*EVERYONE)
async def list_pets(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, PetsQuery)
    rows, next_cursor = await fetch_page(
        request, "pets", pets_statement, PetCriteria(customer_id), query, key_column="added_at"
    )
    return json_response(PetPage(items=[_row_out(r) for r in rows], next_cursor=next_cursor))


async def current_pets(request: web.Request, customer_id: UUID) -> list[dict[str, Any]]:
    """The customer's pets for its GET (the first 200, from the read model), as JSON."""
    rows, _ = await fetch_page(
        request,
        "pets",
        pets_statement,
        PetCriteria(customer_id),
        PetsQuery(limit=MAX_LIMIT),
        key_column="added_at",
    )
    return [_row_out(r).model_dump(mode="json") for r in rows]


# ---- helpers -----------------------------------------------------------------------------


def _row_out(row: dict[str, Any]) -> PetOut:
    vet = VetOut(name=row["vet_name"], clinic=row["vet_clinic"], phone=row["vet_phone"])
    plain = {k: v for k, v in row.items() if not k.startswith("vet_")}
    return PetOut(**plain, vet=vet if any(vars(vet).values()) else None)


def _pet_out(pet: Pet) -> PetOut:
    return PetOut(
        id=pet.id,
        customer_id=pet.customer_id,
        name=pet.name,
        species=pet.species,
        breed=pet.breed,
        birthday=pet.birthday,
        notes=pet.notes,
        vet=VetOut(**vars(pet.vet)) if pet.vet else None,
        added_at=pet.created_on,
        updated_at=pet.modified_on,
        version=pet.version,
    )
