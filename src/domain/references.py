"""How customer-owned records refer to customers: the customer a new record is for, the
records a customer may act on (their own: another's answers "not found"), and a new record
following its customer into a merge that happened while it was saved."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.customers import Customer
from domain.errors import (
    ConflictError,
    MergedCustomerError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.write_path import Receipt, WritePath

__all__ = ["active_customer", "customer_of_part", "follow_merges", "followed", "load_for"]


def active_customer(service: WritePath, customer_id: UUID) -> Customer:
    """The customer a new record is for: 422 when unknown (a field of the request, not the
    resource asked for), 409 when deleted or erased."""
    try:
        customer: Customer = service.load(customer_id, Customer, None)
    except NotFoundError:
        raise RuleViolationError("customer_id", f"there is no customer {customer_id}") from None
    if customer.erased:
        raise ConflictError(f"customer {customer_id} is erased", field="customer_id")
    if customer.merged_into is not None:
        raise MergedCustomerError(customer.id, customer.merged_into, field="customer_id")
    if customer.deleted:
        raise ConflictError(
            f"customer {customer_id} is deleted; restore it first", field="customer_id"
        )
    return customer


def load_for(
    service: WritePath,
    aggregate_id: UUID,
    kind: type[Aggregate],
    expected_version: int | None,
    customer_scope: UUID | None,
) -> Any:
    """The record of that kind, checked against the version the caller saw; under a
    customer scope, another customer's record is "not found" before versions are compared,
    so a customer cannot learn that another's id exists."""
    record = service.load(aggregate_id, kind, None)
    if customer_scope is not None and record.customer_id != customer_scope:
        raise NotFoundError(kind.__name__.lower(), aggregate_id)
    if expected_version is not None and expected_version != record.version:
        raise VersionMismatchError(expected_version, record.version)
    return record


def follow_merges(service: WritePath, record_id: UUID, customer_id: UUID, seen: int) -> None:
    """Move a new record to the survivor when its customer was merged away while the
    command ran (read at version `seen` before the merge, saved after it), as the merge
    would have: a follow-up save; one look-up, no decoding, when the customer is unchanged.

    Its twin is the merge's own sweep after its save, for a record saved between the
    merge's look-up of the customer's records and its save (see `MergeCommands`).
    """
    if not service.recorder.select_events(customer_id, gt=seen, limit=1):
        return
    customer: Customer = service.load(customer_id, Customer, None)
    while customer.merged_into is not None and customer.merge_id is not None:
        record: Any = service.repository.get(record_id)
        if record.customer_id == customer.id:
            record.relink(customer.merged_into, customer.merge_id)
            try:
                service.save(record)
            except IntegrityError:
                continue  # the merge's sweep moved it meanwhile: read it again
        customer = service.load(customer.merged_into, Customer, None)


def followed(service: WritePath, receipt: Receipt, customer_id: UUID, seen: list[int]) -> Receipt:
    """The receipt of a new record, once the record followed a merge that took its customer
    away while the command ran (`seen`: the customer's version the command read)."""
    if not receipt.replayed and seen:
        follow_merges(service, receipt.aggregate_id, customer_id, seen[0])
    return receipt


def customer_of_part(service: WritePath, customer_id: UUID) -> Customer:
    """The customer a record of its own (loyalty, cards, packages) is added to, named by the
    path: 404 when unknown (the resource asked for), 409 when erased, merged away (naming
    the survivor) or deleted."""
    customer: Customer = service.load(customer_id, Customer, None)
    if customer.erased:
        raise ConflictError(
            "customer is erased: nothing more can be recorded for it", field="erased"
        )
    if customer.merged_into is not None:
        raise MergedCustomerError(customer.id, customer.merged_into)
    if customer.deleted:
        raise ConflictError("customer is deleted; restore it first", field="deleted")
    return customer
