"""The customer a record of its tabs (pets, interactions, chat, scores...) is added to.

The customer is the resource in the path (`/v1/customers/{id}/pets`), so an unknown one is
"not found" (404), unlike a `customer_id` in a body (422, `domain.references`); an erased
or soft-deleted customer takes no new records (409), as it takes no appointments; nor does
a merged one (409 naming the survivor).
"""

from __future__ import annotations

from uuid import UUID

from domain.customers import Customer
from domain.errors import ConflictError, MergedCustomerError
from domain.write_path import WritePath

__all__ = ["customer_taking_records"]


def customer_taking_records(
    service: WritePath, customer_id: UUID, expected_version: int | None = None
) -> Customer:
    """The customer, checked against the version the caller saw (If-Match, optional)."""
    customer: Customer = service.load(customer_id, Customer, expected_version)
    if customer.erased:
        raise ConflictError(f"customer {customer_id} is erased")
    if customer.merged_into is not None:
        raise MergedCustomerError(customer.id, customer.merged_into)
    if customer.deleted:
        raise ConflictError(f"customer {customer_id} is deleted; restore it first")
    return customer
