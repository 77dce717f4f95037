"""Merging duplicate customers and undoing a merge: the commands (the rules: domain.merging).

A merge is ONE atomic save: the survivor's `Merged` events, each merged customer's
`MergedInto` tombstone, the transfer of their email, mobile phone and username
reservations to the survivor, and the relinking of every record they own (`LINKED_KINDS`:
appointments, tickets, pets, files, interactions, chat messages, satisfaction scores,
packages, invoices, payments; `domain.relinking`), and the move of their loyalty points
and the cards that fit (`domain.merge_accounts`). Its undoing is one save too. Every
customer named is checked against the version its caller saw, so two merges racing on one
customer cannot both win: the event store takes the first save and the second, retried on
fresh state, is refused (412 or 409).

Reservations follow the customer who holds them: a survivor holds its own values and,
while the merge stands, those of every customer merged into it (recursively, through a
merged customer that had survived an earlier merge). The customer number stays with the
tombstone: it is never given to anyone else.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain import merging
from domain.appointments import Appointment
from domain.chat import ChatMessage
from domain.customer_commands import CustomerCommands, unique_values
from domain.customers import Customer
from domain.errors import (
    ConflictError,
    MergedCustomerError,
    RuleViolationError,
    UniqueValueTakenError,
)
from domain.files import CustomerFile
from domain.interactions import Interaction
from domain.invoices import Invoice
from domain.key_ring import SEALED_PREFIX
from domain.merge_accounts import AccountsMove
from domain.packages import Package
from domain.payments import Payment
from domain.pets import Pet
from domain.portal import PortalAccount, portal_account_id
from domain.portal_commands import portal_account_of
from domain.relinking import Relinkable
from domain.reservations import Reservation, reservation_id
from domain.satisfaction import SatisfactionScore
from domain.tickets import Ticket
from domain.values import InstalledSystem
from domain.write_path import Change, Idempotency, Receipt

__all__ = ["LINKED_KINDS", "MergeCommands", "held_values", "linking_events"]

_MAX_CHAIN = 100
"""Longer chains of merged customers are corrupt data, not history."""
LINKED_KINDS: dict[type[Relinkable], tuple[str, type[Aggregate.Event]]] = {
    Appointment: ("appointments", Appointment.Booked),
    Ticket: ("tickets", Ticket.Opened),
    Pet: ("pets", Pet.Added),
    CustomerFile: ("files", CustomerFile.Uploaded),
    Interaction: ("interactions", Interaction.Logged),
    ChatMessage: ("chat_messages", ChatMessage.Posted),
    SatisfactionScore: ("satisfaction_scores", SatisfactionScore.Given),
    Package: ("packages", Package.Bought),
    Invoice: ("invoices", Invoice.Issued),
    Payment: ("payments", Payment.Recorded),
    PortalAccount: ("portal_accounts", PortalAccount.Opened),
}
"""Every customer-owned kind of record a merge moves: its name in the merge's answer and
the event that creates it. A kind added here is found (`linking_events`), moved, answered
and given back with no other change in the merge."""


def linking_events() -> list[type[Aggregate.Event]]:
    """The events that name a record's customer: each kind's creation and its relinking."""
    return [e for kind, (_, created) in LINKED_KINDS.items() for e in (created, kind.Relinked)]


class MergeCommands(CustomerCommands):
    """Merge and unmerge, on the customer commands' write path."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self.linked_records: Callable[[UUID], set[UUID]] = self._linked_records_in_log
        """Ids of the records (`LINKED_KINDS`) that ever named the customer (a superset:
        each is loaded and checked); the infrastructure sets one query for all."""

    def merge_customers(
        self,
        survivor_id: UUID,
        merged_ids: Sequence[UUID],
        *,
        expected_versions: Mapping[UUID, int],
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Merge the customers into the survivor, each at the version its caller saw."""
        merged_ids = list(merged_ids)
        for customer_id in (survivor_id, *merged_ids):
            if customer_id not in expected_versions:
                raise RuleViolationError(
                    f"versions.{customer_id}", "the version you saw of each customer is needed"
                )

        def attempt() -> Change:
            survivor = self._customer(survivor_id, expected_versions[survivor_id])
            if survivor.merged_into is not None:
                self._refuse_loop(survivor, merged_ids)
            merging.check_merge(survivor, merged_ids)
            merged = [self._customer(i, expected_versions[i]) for i in merged_ids]
            for customer in merged:
                merging.check_mergeable(customer)
            merge_id = uuid4()
            moved = merging.merge(survivor, merged, merge_id, self._resealer(survivor.id))
            to_save: list[Aggregate] = [survivor, *merged]
            kept = self._kept_account(survivor.id)
            accounts = AccountsMove(self.repository)
            for customer in merged:
                transfers = self._transfers(customer, customer.id, survivor.id)
                records = self._relinks(customer.id, survivor.id, merge_id, kept=kept)
                moved[customer.id]["reservations"] = sorted(r.field for r in transfers)
                moved[customer.id].update(_by_kind(records, survivor.id))
                moved[customer.id]["closed_portal_accounts"] = [
                    r.id for r in records if isinstance(r, PortalAccount) and r.closed_by
                ]
                moved[customer.id].update(accounts.merge(survivor.id, customer.id, merge_id))
                to_save += [*transfers, *records]
            to_save += accounts.to_save()
            result = _merge_result(survivor, merge_id, merged_ids, moved)
            return Change(survivor.id, survivor.version, result, to_save)

        receipt = self.execute(attempt, idempotency, key=survivor_id)
        if not receipt.replayed:
            self._sweep(merged_ids, survivor_id, receipt.result["merge_id"])
        return receipt

    def unmerge_customers(
        self,
        survivor_id: UUID,
        merge_id: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Undo a merge: each merged customer back as it was at the merge, with its parts,
        values and records; what the survivor got since stays."""

        def attempt() -> Change:
            survivor = self._customer(survivor_id, expected_version)
            if survivor.erased:
                raise ConflictError(
                    "the survivor is erased, and the merged customers with it", field="id"
                )
            if survivor.merged_into is not None:
                raise ConflictError(
                    f"customer {survivor_id} was merged into customer {survivor.merged_into} "
                    f"since (merge {survivor.merge_id}): undo that merge first",
                    field="merge_id",
                )
            brought = survivor.merges.get(merge_id)
            if brought is None:
                raise ConflictError(
                    f"merge {merge_id} is not a standing merge into customer {survivor_id}",
                    field="merge_id",
                )
            to_save: list[Aggregate] = [survivor]
            moved_back: dict[UUID, dict[str, Any]] = {}
            accounts = AccountsMove(self.repository)
            for merged_id in list(brought):
                customer = self._customer(merged_id, None)
                moved_back[merged_id] = merging.unmerge(survivor, customer)
                transfers = self._transfers(customer, survivor.id, customer.id)
                _check_not_kept(survivor, transfers)
                records = self._relinks(survivor.id, customer.id, merge_id, undone=True)
                reopened = self._reopened_accounts(customer, merge_id)
                moved_back[merged_id]["reservations"] = sorted(r.field for r in transfers)
                moved_back[merged_id].update(_by_kind(records, customer.id))
                moved_back[merged_id]["closed_portal_accounts"] = [r.id for r in reopened]
                moved_back[merged_id].update(accounts.unmerge(survivor.id, merged_id, merge_id))
                to_save += [customer, *transfers, *records, *reopened]
            to_save += accounts.to_save()
            result = {
                "id": survivor.id,
                "version": survivor.version,
                "merge_id": merge_id,
                "survivor_id": survivor.id,
                "restored_ids": list(moved_back),
                "moved_back": {str(k): v for k, v in moved_back.items()},
            }
            return Change(survivor.id, survivor.version, result, to_save)

        return self.execute(attempt, idempotency, key=survivor_id)

    def merged_customers(self, customer: Customer) -> list[Customer]:
        """Every customer merged into this one while its merges stand, through chains."""
        found: list[Customer] = []
        for sources in customer.merges.values():
            for merged_id in sources:
                merged = self._customer(merged_id, None)
                found += [merged, *self.merged_customers(merged)]
        return found

    # ---- the parts of a merge --------------------------------------------------------------

    def _refuse_loop(self, survivor: Customer, merged_ids: Sequence[UUID]) -> None:
        """A tombstone as survivor: say where it went, or that the merge would loop."""
        assert survivor.merged_into is not None
        chain, current = [survivor.id], survivor
        while current.merged_into is not None and len(chain) < _MAX_CHAIN:
            if current.merged_into in merged_ids:
                path = " → ".join(str(i) for i in [*chain, current.merged_into])
                raise ConflictError(
                    f"the merge would loop: {path}, which this merge would merge into "
                    f"{survivor.id}",
                    field="from",
                )
            current = self._customer(current.merged_into, None)
            chain.append(current.id)
        raise MergedCustomerError(survivor.id, survivor.merged_into, field="id")

    def _transfers(self, holder: Customer, from_id: UUID, to_id: UUID) -> list[Reservation]:
        """The reservations `holder` and the customers merged into it hold, moved from one
        owner to the other; the customer number stays with its customer."""
        moved: list[Reservation] = []
        for name, value in held_values(self, holder):
            try:
                reservation: Reservation = self.repository.get(reservation_id(name, value))
            except AggregateNotFoundError:  # a value stored before it was reserved
                moved.append(Reservation.claim_new(name, value, to_id))
                continue
            reservation.transfer(from_id, to_id)
            moved.append(reservation)
        return moved

    def _relinks(
        self,
        from_id: UUID,
        to_id: UUID,
        merge_id: UUID,
        *,
        undone: bool = False,
        kept: list[UUID] | None = None,
    ) -> list[Any]:
        """The records of `from_id` relinked to `to_id` (on undoing, only those that this
        merge moved from `to_id`). A portal account moves only to a survivor without one
        (`kept`: the account the survivor keeps, filled by the first that moves; looked up
        when not given): else it is closed, and stays with its tombstone."""
        relinked: list[Any] = []
        for record_id in sorted(self.linked_records(from_id)):
            record: Aggregate = self.repository.get(record_id)
            if not isinstance(record, Relinkable) or record.customer_id != from_id:
                continue
            if undone and record.merged_from.get(merge_id) != to_id:
                continue
            if isinstance(record, PortalAccount) and not undone:
                if record.closed_by is not None:  # closed by this merge (a sweep) or before
                    continue
                kept = self._kept_account(to_id) if kept is None else kept
                if kept:
                    record.close(merge_id, to_id, kept[0])
                    relinked.append(record)
                    continue
                kept.append(record.id)
            record.relink(to_id, merge_id, undone=undone)
            relinked.append(record)
        return relinked

    def _kept_account(self, survivor_id: UUID) -> list[UUID]:
        """The survivor's open portal account, as a list (empty without one) that a merge
        fills with the first account it moves to the survivor."""
        account = portal_account_of(self, survivor_id)
        return [account.id] if account is not None else []

    def _reopened_accounts(self, customer: Customer, merge_id: UUID) -> list[PortalAccount]:
        """The customer's portal accounts that the merge being undone closed, reopened: its
        own, or one an earlier merge had moved to it."""
        reopened: list[PortalAccount] = []
        for holder in (customer, *self.merged_customers(customer)):
            try:
                account: PortalAccount = self.repository.get(portal_account_id(holder.id))
            except AggregateNotFoundError:
                continue
            if account.customer_id == customer.id and account.closed_by == merge_id:
                account.reopen(merge_id)
                reopened.append(account)
        return reopened

    def _sweep(self, merged_ids: Sequence[UUID], survivor_id: UUID, merge_id: UUID) -> None:
        """Relink the records saved for the merged customers after the merge looked for
        theirs and before it saved (a booking that read the customer before the merge);
        one saved after the merge follows by itself (`domain.references.follow_merges`)."""
        for merged_id in merged_ids:
            for record in self._relinks(merged_id, survivor_id, merge_id):
                # IntegrityError: the record followed the merge by itself meanwhile.
                with contextlib.suppress(IntegrityError):
                    self.save(record)

    def _resealer(self, survivor_id: UUID) -> Callable[[InstalledSystem, UUID], InstalledSystem]:
        """Seal a moved system's secret with the survivor's key (the merged customer's key
        goes with the merged customer)."""

        def reseal(system: InstalledSystem, from_id: UUID) -> InstalledSystem:
            sealed = system.sealed_secret
            if sealed is None or not sealed.startswith(SEALED_PREFIX):
                return system  # none, or sealed with the service key: readable anywhere
            old = self.key_ring.data_key(from_id)
            new = self.key_ring.data_key(survivor_id, create=True)
            if old is None or new is None:
                raise ConflictError("a customer of the merge is erased", field="from")
            return dataclasses.replace(system, sealed_secret=new.seal(old.unseal(sealed)))

        return reseal

    def _linked_records_in_log(self, customer_id: UUID) -> set[UUID]:
        """Every record that ever named the customer, from the whole log (for the
        in-memory store; the event store answers with one query)."""
        topics = [get_topic(event) for event in linking_events()]
        found: set[UUID] = set()
        start = 1
        while page := self.recorder.select_notifications(start, 500, topics=topics):
            for notification in page:
                event = self.mapper.to_domain_event(notification)
                if getattr(event, "customer_id", None) == customer_id:
                    found.add(event.originator_id)
            start = page[-1].id + 1
        return found


def held_values(service: MergeCommands, customer: Customer) -> list[tuple[str, str | int]]:
    """The email, mobile phone and username reservations a customer holds: its own and,
    while its merges stand, those of the customers merged into it."""
    held: dict[UUID, tuple[str, str | int]] = {}
    for holder in (customer, *service.merged_customers(customer)):
        for name, value in unique_values(holder.profile, None).items():
            held.setdefault(reservation_id(name, value), (name, value))
    return list(held.values())


def _check_not_kept(survivor: Customer, transfers: Sequence[Reservation]) -> None:
    """A value going back that the survivor made its own since (say, changed its email to
    the merged one's) would be held by two customers: refused, naming it."""
    own = {
        reservation_id(name, value): name
        for name, value in unique_values(survivor.profile, None).items()
    }
    for reservation in transfers:
        if reservation.id in own:
            raise UniqueValueTakenError(own[reservation.id], survivor.id)


def _by_kind(records: Sequence[Any], to_id: UUID) -> dict[str, list[UUID]]:
    """The ids of the records moved to `to_id` under each kind's name (an empty list for
    none)."""
    return {
        name: [r.id for r in records if isinstance(r, kind) and r.customer_id == to_id]
        for kind, (name, _) in LINKED_KINDS.items()
    }


def _merge_result(
    survivor: Customer, merge_id: UUID, merged_ids: Sequence[UUID], moved: dict[UUID, Any]
) -> dict[str, Any]:
    return {
        "id": survivor.id,
        "version": survivor.version,
        "merge_id": merge_id,
        "survivor_id": survivor.id,
        "merged_ids": list(merged_ids),
        "moved": {str(k): v for k, v in moved.items()},
    }
