"""What the relay's notification requests read besides the event, from the service.

Profiles and tickets as they were when the event happened, the business time zone, and
the portal links' tokens opened with the service's key and sealed again with the
notification key, so the token leaves the service only in a form the notification
consumer alone can open.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import structlog

from domain.errors import NotFoundError
from domain.sealing import SecretSealer, UnreadableSecretError
from domain.service import CustomerService
from domain.values import Profile
from projections.notifications import Lookups, ProfileLookup

__all__ = ["service_lookups"]

_log = structlog.get_logger("workers.relay")


def service_lookups(service: CustomerService, time_zone: str, notification_key: str) -> Lookups:
    """What notification requests read, from the service: profiles and tickets as they were
    at the event, and portal tokens sealed again for the notification consumer."""
    for_sender = SecretSealer(notification_key)

    def seal_for_sender(sealed: str) -> str | None:
        # The token leaves the service only sealed for the consumer, never in clear.
        try:
            return for_sender.seal(service.unseal(sealed))
        except UnreadableSecretError:
            # A lost or shredded key: no link can work; the relay must not stall on it.
            _log.warning("portal_link_unreadable", reason="the token's key is gone: not sent")
            return None

    return Lookups(
        profiles=_profile_lookup(service),
        time_zone=time_zone,
        seal_for_sender=seal_for_sender,
        aggregate_at=lambda aggregate_id, version: service.repository.get(
            aggregate_id, version=version
        ),
    )


def _profile_lookup(service: CustomerService) -> ProfileLookup:
    def profile(customer_id: UUID, at: datetime) -> Profile | None:
        try:
            return service.get_customer(customer_id, as_of=at).profile
        except NotFoundError:
            return None

    return profile
