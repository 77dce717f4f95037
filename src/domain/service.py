"""The service: one application, so customers, appointments and tickets share one global log.

One log gives each projection one subscription and lets a command save several aggregates
atomically. The commands live in one mixin per aggregate; this module wires them together.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, Notification, Transcoder

from domain.appointment_commands import AppointmentCommands
from domain.billing_commands import BillingCommands
from domain.card_commands import CardCommands
from domain.conversation_commands import ConversationCommands
from domain.duplicates import not_checked
from domain.erasure_commands import ErasureCommands
from domain.file_commands import FileCommands
from domain.key_ring import InMemoryKeyRing, KeyRing
from domain.loyalty_commands import LoyaltyCommands
from domain.orjson_transcoder import OrjsonTranscoder
from domain.package_commands import PackageCommands
from domain.passwords import PasswordHasher
from domain.pet_commands import PetCommands
from domain.portal_commands import PortalCommands
from domain.sealing import SecretSealer
from domain.shredding import ShreddingMapper
from domain.ticket_commands import TicketCommands
from domain.transcodings import TRANSCODINGS
from domain.write_path import Idempotency, Receipt

__all__ = ["CustomerService", "Idempotency", "Receipt"]


class _Counter:
    """In-memory customer or ticket numbers, for tests and the in-memory store."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return next(self._numbers)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CustomerService(
    ErasureCommands,
    AppointmentCommands,
    TicketCommands,
    PortalCommands,
    PetCommands,
    ConversationCommands,
    FileCommands,
    LoyaltyCommands,
    CardCommands,
    PackageCommands,
    BillingCommands,
):
    """The CRM's commands and queries over one event store."""

    name = "crm"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        sealer: SecretSealer,
        next_customer_number: Callable[[], int] | None = None,
        next_ticket_number: Callable[[], int] | None = None,
        phone_region: str = "US",
        newsletter_default: bool = True,
        clock: Callable[[], datetime] | None = None,
        password_hasher: PasswordHasher | None = None,
        key_ring: KeyRing | None = None,
    ) -> None:
        # Before the library's constructor: it builds the mapper, which needs the keys.
        self.key_ring = key_ring or InMemoryKeyRing()
        """Each customer's data key: personal data and equipment secrets are sealed with it."""
        super().__init__(env)
        self.sealer = sealer
        self.next_customer_number = next_customer_number or _Counter()
        self.next_ticket_number = next_ticket_number or _Counter()
        self.phone_region = phone_region
        self.newsletter_default = newsletter_default
        self.clock = clock or _utc_now
        """Now, for rules such as "no reschedule after the start"; tests move it."""
        self.password_hasher = password_hasher or PasswordHasher()
        self.duplicate_lookup = not_checked
        """Set by whoever has the duplicates read model (`projections.duplicate_queries`)."""

    def construct_transcoder(self) -> Transcoder:
        # The library's transcoder, writing the same bytes faster (`domain.orjson_transcoder`).
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> Mapper[UUID]:
        return ShreddingMapper(
            self.construct_transcoder(),
            self.key_ring,
            cipher=self.factory.cipher(),
            compressor=self.factory.compressor(),
        )

    def decoded(self, notifications: Sequence[Notification]) -> list[tuple[int, Any]]:
        """A page of the log as (position, event), with one key look-up for its customers."""
        mapper: ShreddingMapper = self.mapper  # type: ignore[assignment]
        return list(
            zip((n.id for n in notifications), mapper.to_domain_events(notifications), strict=True)
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for transcoding in TRANSCODINGS:
            transcoder.register(transcoding)
