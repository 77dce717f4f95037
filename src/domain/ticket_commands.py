"""Every command and query about repair tickets.

Commands a customer may give about their own tickets (a public comment) take
`customer_scope` (see `domain.references.load_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from domain.errors import RuleViolationError
from domain.references import active_customer, follow_merges, load_for
from domain.tickets import DEVICE_FIELDS, Device, Ticket
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["TicketCommands"]


class TicketCommands(WritePath):
    """The repair-ticket part of the service; `next_ticket_number` is set by the service."""

    next_ticket_number: Callable[[], int]

    def open_ticket(
        self,
        customer_id: UUID,
        subject: str,
        problem: str,
        device: Mapping[str, Any],
        *,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Open a repair ticket for one of the customer's devices."""
        unknown = set(device) - set(DEVICE_FIELDS)
        if unknown:
            raise RuleViolationError(f"device.{sorted(unknown)[0]}", "not a field of a device")
        values = Device(**device)

        seen: list[int] = []

        def attempt() -> Change:
            customer = active_customer(self, customer_id)
            seen[:] = [customer.version]
            ticket = Ticket.open(
                customer_id=customer.id,
                number=self.next_ticket_number(),
                subject=subject,
                problem=problem,
                device=values,
            )
            change = _changed(ticket)
            change.result["number"] = ticket.number
            return change

        receipt = self.execute(attempt, idempotency)
        if not receipt.replayed:
            follow_merges(self, receipt.aggregate_id, customer_id, seen[0])
        return receipt

    def change_ticket_status(
        self,
        ticket_id: UUID,
        status: str,
        note: str | None = None,
        *,
        customer_note: str | None = None,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Move the ticket along the repair graph, with a note for staff and one for the
        customer."""

        def attempt() -> Change:
            ticket = self._ticket(ticket_id, expected_version)
            ticket.change_status(status, note, customer_note)
            return _changed(ticket)

        return self.execute(attempt, idempotency, key=ticket_id)

    def comment_on_ticket(
        self,
        ticket_id: UUID,
        text: str,
        *,
        public: bool,
        expected_version: int | None = None,
        customer_scope: UUID | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Add a public or internal comment (not on a closed or cancelled ticket)."""

        def attempt() -> Change:
            ticket = self._ticket(ticket_id, expected_version, customer_scope)
            comment_id = ticket.comment(text, public=public)
            change = _changed(ticket)
            change.result["comment_id"] = comment_id
            return change

        return self.execute(attempt, idempotency, key=ticket_id)

    def get_ticket(self, ticket_id: UUID, *, customer_scope: UUID | None = None) -> Ticket:
        """The ticket now (NotFoundError for another customer's, under a scope)."""
        return self._ticket(ticket_id, None, customer_scope)

    def _ticket(
        self, ticket_id: UUID, expected_version: int | None, customer_scope: UUID | None = None
    ) -> Ticket:
        ticket: Ticket = load_for(self, ticket_id, Ticket, expected_version, customer_scope)
        return ticket


def _changed(ticket: Ticket) -> Change:
    return Change(ticket.id, ticket.version, {"id": ticket.id, "version": ticket.version}, [ticket])
