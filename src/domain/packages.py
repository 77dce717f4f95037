"""Prepaid packages: a bundle of sessions a customer bought, used one at a time until none is left.

Seed 002: "Here you buy a new package for your customer and also manage the
active/inactive packages." A package has a number of sessions, optionally a service it is
for, a price paid and an expiry. Each use takes one session; a use when none is left,
after the expiry or once the package is deactivated is refused naming why. Each package
is an aggregate of its own (a customer may hold several), so two uses of its last session
at once meet on one stream and only one wins. Every event carries `customer_id`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal
from uuid import UUID, uuid4

from domain.base import TracedAggregate
from domain.errors import ConflictError, RuleViolationError
from domain.relinking import Relinkable

__all__ = ["MAX_SESSIONS", "Package", "PackageStatus"]

MAX_SESSIONS = 1000
PackageStatus = Literal["active", "used_up", "expired", "deactivated"]


class Package(Relinkable, TracedAggregate):
    """A prepaid bundle of sessions."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        name: str
        service_id: str | None
        sessions: int
        sessions_left: int
        expires_at: datetime | None
        price: Decimal | None
        deactivated: bool
        uses: list[datetime]
        """When each session was used, oldest first."""

    class Bought(TracedAggregate.Created):
        customer_id: UUID
        name: str
        service_id: str | None
        sessions: int
        expires_at: datetime | None
        price: Decimal | None

        def apply(self, package: Package) -> None:
            package.customer_id, package.name = self.customer_id, self.name
            package.service_id, package.price = self.service_id, self.price
            package.sessions = package.sessions_left = self.sessions
            package.expires_at = self.expires_at
            package.deactivated = False
            package.uses = []

    class SessionUsed(TracedAggregate.Event):
        customer_id: UUID
        use_id: UUID
        sessions_left: int

        def apply(self, package: Package) -> None:
            package.sessions_left = self.sessions_left
            package.uses.append(self.timestamp)

    class Deactivated(TracedAggregate.Event):
        customer_id: UUID

        def apply(self, package: Package) -> None:
            package.deactivated = True

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def buy(
        cls,
        *,
        customer_id: UUID,
        name: str,
        sessions: int,
        now: datetime,
        service_id: str | None = None,
        expires_at: datetime | None = None,
        price: Decimal | None = None,
    ) -> Package:
        """A new package; its expiry, if any, must be in the future."""
        if not name or not name.strip():
            raise RuleViolationError("name", "a package needs a name")
        if not 1 <= sessions <= MAX_SESSIONS:
            raise RuleViolationError("sessions", f"1 to {MAX_SESSIONS} sessions")
        if expires_at is not None and expires_at <= now:
            raise RuleViolationError("expires_at", "the expiry must be in the future")
        if price is not None and price < 0:
            raise RuleViolationError("price", "a price cannot be negative")
        return cls._create(
            cls.Bought,
            id=uuid4(),
            customer_id=customer_id,
            name=name.strip(),
            service_id=service_id,
            sessions=sessions,
            expires_at=expires_at,
            price=price,
        )

    def status(self, now: datetime) -> PackageStatus:
        if self.deactivated:
            return "deactivated"
        if self.sessions_left == 0:
            return "used_up"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def use(self, now: datetime) -> UUID:
        """Take one session: refused (409, naming why) unless the package is active."""
        match self.status(now):
            case "deactivated":
                raise ConflictError("the package is deactivated", field="status")
            case "used_up":
                raise ConflictError(
                    f"no sessions left: all {self.sessions} are used", field="sessions_left"
                )
            case "expired":
                assert self.expires_at is not None
                raise ConflictError(
                    f"the package expired at {self.expires_at.isoformat()}", field="expires_at"
                )
        use_id = uuid4()
        self.trigger_event(
            self.SessionUsed,
            customer_id=self.customer_id,
            use_id=use_id,
            sessions_left=self.sessions_left - 1,
        )
        return use_id

    def deactivate(self) -> None:
        if self.deactivated:
            raise ConflictError("the package is deactivated already", field="status")
        self.trigger_event(self.Deactivated, customer_id=self.customer_id)
