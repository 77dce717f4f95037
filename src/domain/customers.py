"""The customer: who they are, how to reach them, and what the business keeps about them.

Public methods decide (check the rules, make ids); the nested event classes only apply.
An event's `apply` runs again on every rebuild, so it never checks a rule: old history
that was valid when written must stay loadable after a rule changes.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from domain import merging
from domain.base import TracedAggregate
from domain.errors import (
    ConflictError,
    ImmutableFieldError,
    MergedCustomerError,
    NotFoundError,
    RuleViolationError,
)
from domain.personal_data import (
    ADDRESS_FIELDS,
    CONTACT_FIELDS,
    PROFILE_FIELDS,
    redacted,
)
from domain.values import (
    ADDRESS_KINDS,
    Address,
    Consent,
    Contact,
    Credit,
    InstalledSystem,
    KeyCustody,
    Note,
    Profile,
)

__all__ = ["CONSENT_TOPICS", "Customer"]

CONSENT_TOPICS = ("newsletter", "promotional_sms")
"""Profile flags whose changes are kept as consent history rather than plain edits."""

SYSTEM_FIELDS = ("system_type", "ip_address", "login", "sealed_secret", "version", "notes")


class Customer(TracedAggregate):
    """A person or company the business serves."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_number: int
        """Unique, positive; allocated when registration gives none."""
        profile: Profile
        deleted: bool
        """Soft-deleted: hidden from search, kept with its history."""
        blocked: bool
        """Blocked customers cannot log in to the portal."""
        erased: bool
        """Erased (GDPR): personal data redacted for good, no more changes."""
        block_reason: str | None
        notes: dict[UUID, Note]
        contacts: dict[UUID, Contact]
        addresses: dict[UUID, Address]
        systems: dict[UUID, InstalledSystem]
        key_custody: KeyCustody | None
        custom_prices: dict[str, Decimal]
        """Prices agreed with this customer, by service id, overriding the list price."""
        credits: list[Credit]
        consents: list[Consent]
        merged_into: UUID | None
        """Set while the customer is merged into another (a tombstone: see domain.merging)."""
        merge_id: UUID | None
        merges: dict[UUID, dict[UUID, merging.Merged]]
        """Merges this customer survived and that are not undone: by merge id, what each
        merged customer brought."""

    # ---- registration ---------------------------------------------------------------

    class Registered(TracedAggregate.Created):
        customer_number: int
        profile: Profile
        addresses: list[Address]
        consent_channel: str

        def apply(self, customer: Customer) -> None:
            customer.customer_number = self.customer_number
            customer.profile = self.profile
            customer.deleted = customer.blocked = customer.erased = False
            customer.block_reason = None
            customer.notes, customer.contacts, customer.systems = {}, {}, {}
            customer.addresses = {a.address_id: a for a in self.addresses}
            customer.key_custody = None
            customer.custom_prices = {}
            customer.credits = []
            customer.merged_into = customer.merge_id = None
            customer.merges = {}
            customer.consents = [
                Consent(
                    topic,
                    getattr(self.profile, topic),
                    self.consent_channel,
                    self.timestamp,
                    self.actor,
                )
                for topic in CONSENT_TOPICS
            ]

    @classmethod
    def register(
        cls,
        *,
        customer_number: int,
        profile: Profile,
        addresses: list[Address] | None = None,
        customer_id: UUID | None = None,
    ) -> Customer:
        """Register a customer; the registration source is where the consents were given."""
        if customer_number <= 0:
            raise RuleViolationError("customer_number", "customer_number must be positive")
        profile.check_rules()
        for address in addresses or ():
            _check_address(address)
        return cls._create(
            cls.Registered,
            id=customer_id or uuid4(),
            customer_number=customer_number,
            profile=profile,
            addresses=list(addresses or ()),
            consent_channel=profile.source,
        )

    # ---- profile and consent --------------------------------------------------------

    class ProfileChanged(TracedAggregate.Event):
        changes: dict[str, Any]

        def apply(self, customer: Customer) -> None:
            customer.profile = Profile.from_dict({**customer.profile.as_dict(), **self.changes})

    class ConsentChanged(TracedAggregate.Event):
        topic: str
        granted: bool
        channel: str

        def apply(self, customer: Customer) -> None:
            changed: dict[str, Any] = {self.topic: self.granted}
            customer.profile = dataclasses.replace(customer.profile, **changed)
            customer.consents.append(
                Consent(self.topic, self.granted, self.channel, self.timestamp, self.actor)
            )

    def change_profile(self, changes: dict[str, Any], *, consent_channel: str) -> list[str]:
        """Apply a partial update; returns the names of the fields that really changed."""
        self._check_not_deleted()
        unknown = set(changes) - set(Profile.field_names())
        if unknown:
            raise RuleViolationError(sorted(unknown)[0], "not a profile field")
        current = self.profile.as_dict()
        changed = {name: value for name, value in changes.items() if _differs(current[name], value)}
        if (
            "username" in changed
            and self.profile.username is not None
            and (changed["username"] or "").casefold() != self.profile.username.casefold()
        ):
            raise ImmutableFieldError("username")
        Profile.from_dict({**current, **changed}).check_rules()
        plain = {k: v for k, v in changed.items() if k not in CONSENT_TOPICS}
        if plain:
            self.trigger_event(self.ProfileChanged, changes=plain)
        for topic in CONSENT_TOPICS:
            if topic in changed:
                self.trigger_event(
                    self.ConsentChanged,
                    topic=topic,
                    granted=changed[topic],
                    channel=consent_channel,
                )
        return sorted(changed)

    # ---- lifecycle ------------------------------------------------------------------

    class Deleted(TracedAggregate.Event):
        def apply(self, customer: Customer) -> None:
            customer.deleted = True

    class Restored(TracedAggregate.Event):
        def apply(self, customer: Customer) -> None:
            customer.deleted = False

    class Blocked(TracedAggregate.Event):
        reason: str | None

        def apply(self, customer: Customer) -> None:
            customer.blocked, customer.block_reason = True, self.reason

    class Unblocked(TracedAggregate.Event):
        def apply(self, customer: Customer) -> None:
            customer.blocked, customer.block_reason = False, None

    class Erased(TracedAggregate.Event):
        """The customer's data key was destroyed: its personal data is unreadable everywhere."""

        def apply(self, customer: Customer) -> None:
            # The events before this one read redacted once the key is gone; this makes the
            # state redacted at once too, in a process that still holds the key in memory.
            customer.erased = True
            customer.profile = redacted(customer.profile, PROFILE_FIELDS)
            customer.addresses = {
                i: redacted(a, ADDRESS_FIELDS) for i, a in customer.addresses.items()
            }
            customer.contacts = {
                i: redacted(c, CONTACT_FIELDS) for i, c in customer.contacts.items()
            }
            customer.notes = {i: dataclasses.replace(n, text="") for i, n in customer.notes.items()}
            customer.systems = {
                i: dataclasses.replace(
                    s, ip_address=None, login=None, notes=None, sealed_secret=None
                )
                for i, s in customer.systems.items()
            }
            if customer.key_custody is not None:
                customer.key_custody = dataclasses.replace(customer.key_custody, location=None)
            customer.block_reason = None
            customer.credits = [dataclasses.replace(c, reason="") for c in customer.credits]

    def erase(self) -> bool:
        """Record the erasure; False (and nothing recorded) when already erased."""
        if self.erased:
            return False
        self.trigger_event(self.Erased)
        return True

    def delete(self) -> None:
        """Hide the customer from search; everything is kept and can be restored."""
        self._check_not_deleted()
        self.trigger_event(self.Deleted)

    def restore(self) -> None:
        self._check_not_erased()
        if not self.deleted:
            raise ConflictError("customer is not deleted", field="deleted")
        self.trigger_event(self.Restored)

    def block(self, reason: str | None = None) -> None:
        self._check_not_deleted()
        if self.blocked:
            raise ConflictError("customer is already blocked", field="blocked")
        self.trigger_event(self.Blocked, reason=reason)

    def unblock(self) -> None:
        self._check_not_deleted()
        if not self.blocked:
            raise ConflictError("customer is not blocked", field="blocked")
        self.trigger_event(self.Unblocked)

    # ---- notes, contacts, addresses ---------------------------------------------------

    class NoteAdded(TracedAggregate.Event):
        note_id: UUID
        text: str
        urgent: bool

        def apply(self, customer: Customer) -> None:
            customer.notes[self.note_id] = Note(
                self.note_id, self.text, self.urgent, self.timestamp, self.actor
            )

    class NoteRemoved(TracedAggregate.Event):
        note_id: UUID

        def apply(self, customer: Customer) -> None:
            del customer.notes[self.note_id]

    def add_note(self, text: str, *, urgent: bool = False) -> UUID:
        self._check_not_deleted()
        if not text.strip():
            raise RuleViolationError("text", "a note needs text")
        note_id = uuid4()
        self.trigger_event(self.NoteAdded, note_id=note_id, text=text, urgent=urgent)
        return note_id

    def remove_note(self, note_id: UUID) -> None:
        self._check_not_deleted()
        _require_part(self.notes, "note", note_id)
        self.trigger_event(self.NoteRemoved, note_id=note_id)

    def notes_in_order(self) -> list[Note]:
        """Urgent notes first, then oldest first, as staff read them."""
        return sorted(self.notes.values(), key=lambda n: (not n.urgent, n.added_at))

    class ContactAdded(TracedAggregate.Event):
        contact: Contact

        def apply(self, customer: Customer) -> None:
            customer.contacts[self.contact.contact_id] = self.contact

    class ContactRemoved(TracedAggregate.Event):
        contact_id: UUID

        def apply(self, customer: Customer) -> None:
            del customer.contacts[self.contact_id]

    def add_contact(self, **fields: Any) -> UUID:
        self._check_not_deleted()
        contact = Contact(contact_id=uuid4(), **fields)
        if not contact.name.strip():
            raise RuleViolationError("name", "a contact needs a name")
        self.trigger_event(self.ContactAdded, contact=contact)
        return contact.contact_id

    def remove_contact(self, contact_id: UUID) -> None:
        self._check_not_deleted()
        _require_part(self.contacts, "contact", contact_id)
        self.trigger_event(self.ContactRemoved, contact_id=contact_id)

    class AddressAdded(TracedAggregate.Event):
        address: Address

        def apply(self, customer: Customer) -> None:
            customer.addresses[self.address.address_id] = self.address

    class AddressRemoved(TracedAggregate.Event):
        address_id: UUID

        def apply(self, customer: Customer) -> None:
            del customer.addresses[self.address_id]

    def add_address(self, **fields: Any) -> UUID:
        self._check_not_deleted()
        address = Address(address_id=uuid4(), **fields)
        _check_address(address)
        self.trigger_event(self.AddressAdded, address=address)
        return address.address_id

    def remove_address(self, address_id: UUID) -> None:
        self._check_not_deleted()
        _require_part(self.addresses, "address", address_id)
        self.trigger_event(self.AddressRemoved, address_id=address_id)

    # ---- installed systems, keys, prices, credit ------------------------------------------

    class SystemInstalled(TracedAggregate.Event):
        system: InstalledSystem

        def apply(self, customer: Customer) -> None:
            customer.systems[self.system.system_id] = self.system

    class SystemChanged(TracedAggregate.Event):
        system_id: UUID
        changes: dict[str, Any]

        def apply(self, customer: Customer) -> None:
            system = customer.systems[self.system_id]
            customer.systems[self.system_id] = dataclasses.replace(system, **self.changes)

    class SystemRemoved(TracedAggregate.Event):
        system_id: UUID

        def apply(self, customer: Customer) -> None:
            del customer.systems[self.system_id]

    def install_system(self, **fields: Any) -> UUID:
        """Record equipment at the customer's; a secret must arrive already sealed."""
        self._check_not_deleted()
        system = InstalledSystem(system_id=uuid4(), **fields)
        if not system.system_type.strip():
            raise RuleViolationError("system_type", "system_type must not be blank")
        self.trigger_event(self.SystemInstalled, system=system)
        return system.system_id

    def change_system(self, system_id: UUID, changes: dict[str, Any]) -> list[str]:
        self._check_not_deleted()
        system = _require_part(self.systems, "system", system_id)
        unknown = set(changes) - set(SYSTEM_FIELDS)
        if unknown:
            raise RuleViolationError(sorted(unknown)[0], "not a field of an installed system")
        changed = {k: v for k, v in changes.items() if _differs(getattr(system, k), v)}
        if "system_type" in changed and not (changed["system_type"] or "").strip():
            raise RuleViolationError("system_type", "system_type must not be blank")
        if changed:
            self.trigger_event(self.SystemChanged, system_id=system_id, changes=changed)
        return sorted(changed)

    class SecretRevealed(TracedAggregate.Event):
        """Someone (the event's actor) was shown an equipment secret; the secret is not here."""

        system_id: UUID

        def apply(self, customer: Customer) -> None:
            pass

    def reveal_secret(self, system_id: UUID) -> str:
        """Record that the actor is shown the system's secret; returns it, still sealed."""
        self._check_not_erased()
        system = _require_part(self.systems, "system", system_id)
        if system.sealed_secret is None:
            raise NotFoundError("secret of system", system_id)
        self.trigger_event(self.SecretRevealed, system_id=system_id)
        sealed: str = system.sealed_secret
        return sealed

    def remove_system(self, system_id: UUID) -> None:
        self._check_not_deleted()
        _require_part(self.systems, "system", system_id)
        self.trigger_event(self.SystemRemoved, system_id=system_id)

    class KeyCustodyChanged(TracedAggregate.Event):
        holder_staff_id: str
        location: str | None

        def apply(self, customer: Customer) -> None:
            customer.key_custody = KeyCustody(self.holder_staff_id, self.location, self.timestamp)

    def hand_keys_to(self, holder_staff_id: str, location: str | None) -> None:
        self._check_not_deleted()
        if not holder_staff_id.strip():
            raise RuleViolationError("holder_staff_id", "holder_staff_id must not be blank")
        current = self.key_custody
        if current and (current.holder_staff_id, current.location) == (holder_staff_id, location):
            return
        self.trigger_event(
            self.KeyCustodyChanged, holder_staff_id=holder_staff_id, location=location
        )

    class CustomPriceSet(TracedAggregate.Event):
        service_id: str
        price: Decimal

        def apply(self, customer: Customer) -> None:
            customer.custom_prices[self.service_id] = self.price

    def set_custom_price(self, service_id: str, price: Decimal) -> None:
        self._check_not_deleted()
        if price < 0:
            raise RuleViolationError("price", "a price cannot be negative")
        if self.custom_prices.get(service_id) != price:
            self.trigger_event(self.CustomPriceSet, service_id=service_id, price=price)

    class CreditAdded(TracedAggregate.Event):
        credit_id: UUID
        amount: Decimal
        reason: str

        def apply(self, customer: Customer) -> None:
            customer.credits.append(
                Credit(self.credit_id, self.amount, self.reason, self.timestamp, self.actor)
            )

    def add_credit(self, amount: Decimal, reason: str) -> UUID:
        self._check_not_deleted()
        if amount <= 0:
            raise RuleViolationError("amount", "a credit must be a positive amount")
        if not reason.strip():
            raise RuleViolationError("reason", "a credit needs a reason")
        credit_id = uuid4()
        self.trigger_event(self.CreditAdded, credit_id=credit_id, amount=amount, reason=reason)
        return credit_id

    class CreditApplied(TracedAggregate.Event):
        """Credit used to settle an invoice (`domain.billing_commands` decides): listed among
        the credits as a negative amount, so the balance is what is left to use."""

        credit_id: UUID
        amount: Decimal
        invoice_id: UUID
        invoice_number: str

        def apply(self, customer: Customer) -> None:
            customer.credits.append(
                Credit(
                    self.credit_id,
                    -self.amount,
                    f"applied to invoice {self.invoice_number}",
                    self.timestamp,
                    self.actor,
                )
            )

    def record_credit_use(self, amount: Decimal, invoice_id: UUID, invoice_number: str) -> UUID:
        """Record credit used on an invoice (the rules are billing's: `billing_commands`)."""
        self._check_not_deleted()
        credit_id = uuid4()
        self.trigger_event(
            self.CreditApplied,
            credit_id=credit_id,
            amount=amount,
            invoice_id=invoice_id,
            invoice_number=invoice_number,
        )
        return credit_id

    @property
    def credit_balance(self) -> Decimal:
        return sum((c.amount for c in self.credits), Decimal("0"))

    # ---- merging: the events' fields, and the rules, are in domain.merging -------------

    class Merged(merging.Merged):
        """Survivor side: what one merged customer brought (parts keep their ids)."""

    class MergedInto(merging.MergedInto):
        """Merged side: the customer became a tombstone pointing at the survivor."""

    class Unmerged(merging.Unmerged):
        """Survivor side: what one merged customer brought is given back."""

    class UnmergedFrom(merging.UnmergedFrom):
        """Merged side: the customer is itself again, exactly as it was at the merge."""

    # ---- helpers ------------------------------------------------------------------------

    def _check_not_erased(self) -> None:
        if self.erased:
            raise ConflictError(
                "customer is erased: its record can no longer change", field="erased"
            )

    def _check_not_deleted(self) -> None:
        self._check_not_erased()
        if self.merged_into is not None:
            raise MergedCustomerError(self.id, self.merged_into)
        if self.deleted:
            raise ConflictError("customer is deleted; restore it first", field="deleted")


def _differs(current: Any, new: Any) -> bool:
    if isinstance(current, tuple) and isinstance(new, list | tuple):
        return current != tuple(new)
    return bool(current != new)


def _require_part(parts: dict[UUID, Any], kind: str, part_id: UUID) -> Any:
    try:
        return parts[part_id]
    except KeyError:
        raise NotFoundError(kind, part_id) from None


def _check_address(address: Address) -> None:
    if address.kind not in ADDRESS_KINDS:
        raise RuleViolationError("kind", f"address kind must be one of {list(ADDRESS_KINDS)}")
    if not address.line1.strip():
        raise RuleViolationError("line1", "an address needs its first line")
