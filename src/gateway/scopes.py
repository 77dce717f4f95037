"""What a `customer` token may reach: its own customer's records, and nothing else.

Staff roles act on any record. A customer token acts only on its own customer's
appointments and tickets; the domain's commands take that customer as a scope and answer
"not found" for any other, exactly as for an id that does not exist (API.md: 404, never
403, so nobody can probe which ids exist).
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from domain.errors import NotFoundError, RuleViolationError
from gateway.auth import can_see_customer, principal

__all__ = [
    "SELF_SERVICE_FIELDS",
    "customer_scope",
    "listed_customer",
    "require_visible_customer",
    "self_service",
]

SELF_SERVICE_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "email",
        "mobile_phone",
        "phone",
        "newsletter",
        "promotional_sms",
        "notification_channels",
    }
)
"""What a customer may change of its own record in the portal: how to reach it and what it
consents to. Prices, discounts, staff, groups and the rest are the business's to set."""


def customer_scope(request: web.Request) -> UUID | None:
    """The customer a customer token is limited to; None for staff roles."""
    who = principal(request)
    return who.customer_id if who.role == "customer" else None


def require_visible_customer(request: web.Request, customer_id: UUID) -> UUID:
    """`customer_id` if the caller may see that customer; else 404 as for a miss."""
    if not can_see_customer(principal(request), customer_id):
        raise NotFoundError("customer", customer_id)
    return customer_id


def listed_customer(
    request: web.Request, asked: UUID | None, path_customer: UUID | None = None
) -> UUID | None:
    """Whose records a list may show: the path's customer (if the caller may see it), or
    the `customer_id` asked for; a customer token is held to its own (404 for another)."""
    allowed = (
        require_visible_customer(request, path_customer)
        if path_customer is not None
        else customer_scope(request)
    )
    if allowed is not None and asked not in (None, allowed):
        raise NotFoundError("customer", str(asked))
    return allowed or asked


def self_service(request: web.Request, changes: dict[str, object]) -> str | None:
    """For a customer token changing its own record: refuse (422) fields it may not change,
    and name the portal as where its consent choices were made. None for staff roles."""
    if customer_scope(request) is None:
        return None
    for name in sorted(changes):
        if name not in SELF_SERVICE_FIELDS:
            raise RuleViolationError(name, "a customer cannot change this field in the portal")
    return "portal"
