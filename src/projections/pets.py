"""The pets read model: a customer's pets and their vets, one row per pet.

Feeds `GET /v1/customers/{id}/pets` and the `pets` of a customer's GET (pet-care
businesses). A removed pet's row is deleted; so are an erased customer's pets (every
field but the species is personal). Updates are guarded by the pet's version, so an event
applied twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql

from domain.customers import Customer
from domain.pets import Pet
from projections.base import ReadModel
from projections.relinks import relink_row

__all__ = ["COLUMNS", "PetCriteria", "PetsModel", "pets_statement"]

COLUMNS = (
    "id",
    "customer_id",
    "name",
    "species",
    "breed",
    "birthday",
    "notes",
    "vet_name",
    "vet_clinic",
    "vet_phone",
    "added_at",
    "updated_at",
    "version",
)
_PLAIN = ("name", "species", "breed", "birthday", "notes")


class PetsModel(ReadModel):
    """Pets as the customer page shows them."""

    name = "pets"

    def wants(self, event_class: type[Any]) -> bool:
        return event_class is Customer.Erased or issubclass(
            event_class, (Pet.Added, Pet.Changed, Pet.Removed, Pet.Relinked)
        )

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        table = self.table("pets")
        if isinstance(event, Customer.Erased):
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE customer_id = %s").format(table),
                (event.originator_id,),
            )
        elif isinstance(event, Pet.Added):
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (id, customer_id, name, species, breed, birthday, notes,"
                    " vet_name, vet_clinic, vet_phone, added_at, updated_at, version)"
                    " VALUES (%(id)s, %(customer_id)s, %(name)s, %(species)s, %(breed)s,"
                    " %(birthday)s, %(notes)s, %(vet_name)s, %(vet_clinic)s, %(vet_phone)s,"
                    " %(at)s, %(at)s, %(version)s) ON CONFLICT (id) DO NOTHING"
                ).format(table),
                {
                    "id": event.originator_id,
                    "customer_id": event.customer_id,
                    **{name: getattr(event, name) for name in _PLAIN},
                    **_vet_columns(event.vet),
                    "at": event.timestamp,
                    "version": event.originator_version,
                },
            )
        elif isinstance(event, Pet.Changed):
            values = {k: v for k, v in event.changes.items() if k in _PLAIN}
            if "vet" in event.changes:
                values |= _vet_columns(event.changes["vet"])
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %({})s").format(sql.Identifier(k), sql.SQL(k)) for k in values
            )
            cursor.execute(
                sql.SQL(
                    "UPDATE {} SET {}, updated_at = %(at)s, version = %(version)s"
                    " WHERE id = %(id)s AND version < %(version)s"
                ).format(table, assignments),
                {
                    **values,
                    "id": event.originator_id,
                    "at": event.timestamp,
                    "version": event.originator_version,
                },
            )
        elif isinstance(event, Pet.Relinked):  # a merge of its customer (or its undoing)
            relink_row(cursor, table, event, versioned=True)
        elif isinstance(event, Pet.Removed):
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s").format(table), (event.originator_id,)
            )


def _vet_columns(vet: Any) -> dict[str, Any]:
    """The vet's columns; a vet may come back from storage as a dict inside `changes`."""
    if vet is None:
        return {"vet_name": None, "vet_clinic": None, "vet_phone": None}
    get = vet.get if isinstance(vet, dict) else lambda name: getattr(vet, name)
    return {"vet_name": get("name"), "vet_clinic": get("clinic"), "vet_phone": get("phone")}


@dataclass(frozen=True)
class PetCriteria:
    """Whose pets a list shows."""

    customer_id: UUID


def pets_statement(
    schema: str, criteria: PetCriteria, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT of one page of a customer's pets, in the order they were added."""
    params: dict[str, Any] = {"customer_id": criteria.customer_id, "limit": limit}
    where: sql.Composable = sql.SQL("customer_id = %(customer_id)s")
    if after is not None:
        params["after_at"], params["after_id"] = after
        where = sql.SQL("{} AND (added_at, id) > (%(after_at)s, %(after_id)s)").format(where)
    statement = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {where} ORDER BY added_at, id LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        table=sql.Identifier(schema, "pets"),
        where=where,
    )
    return statement, params
