"""Every command about what passes between the business and a customer: interactions
logged, chat messages, satisfaction scores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.chat import ChatMessage
from domain.customer_records import customer_taking_records
from domain.errors import ConflictError, NotFoundError, RuleViolationError
from domain.interactions import Interaction
from domain.references import followed
from domain.satisfaction import SatisfactionScore, score_id_for_ticket
from domain.tickets import Ticket
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["ConversationCommands"]


class ConversationCommands(WritePath):
    """Interactions, chat and satisfaction; `clock` is set by the service."""

    clock: Callable[[], datetime]

    def log_interaction(
        self,
        customer_id: UUID,
        *,
        kind: str,
        direction: str,
        summary: str,
        staff_id: str,
        at: datetime | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Log a call, visit, email... that happened (`at`: when; default now)."""

        seen: list[int] = []

        def attempt() -> Change:
            customer = customer_taking_records(self, customer_id, expected_version)
            seen[:] = [customer.version]
            now = self.clock()
            interaction = Interaction.log(
                customer_id=customer.id,
                kind=kind,
                direction=direction,
                summary=summary,
                at=at or now,
                staff_id=staff_id,
                now=now,
            )
            return _created(interaction)

        return followed(self, self.execute(attempt, idempotency), customer_id, seen)

    def post_message(
        self,
        customer_id: UUID,
        text: str,
        *,
        sender: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Post a chat message from staff or from the customer (the other side is notified)."""

        seen: list[int] = []

        def attempt() -> Change:
            customer = customer_taking_records(self, customer_id, expected_version)
            seen[:] = [customer.version]
            message = ChatMessage.post(customer_id=customer.id, sender=sender, text=text)
            return _created(message)

        return followed(self, self.execute(attempt, idempotency), customer_id, seen)

    def give_satisfaction(
        self,
        customer_id: UUID,
        score: int,
        comment: str | None = None,
        *,
        ticket_id: UUID | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Record a satisfaction score, about one of the customer's own tickets or in general;
        a ticket takes one score (409 for a second)."""

        seen: list[int] = []

        def attempt() -> Change:
            customer = customer_taking_records(self, customer_id, expected_version)
            seen[:] = [customer.version]
            if ticket_id is not None:
                self._own_ticket(customer.id, ticket_id)
                if self.existing_ids([score_id_for_ticket(ticket_id)]):
                    raise ConflictError(
                        f"ticket {ticket_id} has a satisfaction score already", field="ticket_id"
                    )
            given = SatisfactionScore.give(
                customer_id=customer.id, score=score, comment=comment, ticket_id=ticket_id
            )
            return _created(given)

        return followed(self, self.execute(attempt, idempotency), customer_id, seen)

    def _own_ticket(self, customer_id: UUID, ticket_id: UUID) -> None:
        # Another customer's ticket reads as no ticket: a customer token must not learn
        # which ticket ids exist.
        refusal = RuleViolationError("ticket_id", "not one of this customer's tickets")
        try:
            ticket: Ticket = self.load(ticket_id, Ticket, None)
        except NotFoundError:
            raise refusal from None
        if ticket.customer_id != customer_id:
            raise refusal


def _created(aggregate: Any) -> Change:
    return Change(
        aggregate.id,
        aggregate.version,
        {"id": aggregate.id, "version": aggregate.version},
        [aggregate],
    )
