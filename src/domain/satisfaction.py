"""Satisfaction scores (seed 001: the Satisfaction level tab): 1 to 5, with a comment.

A score may answer for one of the customer's tickets (the survey after a repair); a
ticket gets one score: the score's id is derived from the ticket's, so two answers to one
survey meet on one stream and the second is refused (409), even when they race. A score
without a ticket (a general survey) takes a fresh id. Every event carries `customer_id`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID, uuid4, uuid5

from domain.base import TracedAggregate
from domain.errors import RuleViolationError
from domain.relinking import Relinkable

__all__ = ["MAX_SCORE", "MIN_SCORE", "SatisfactionScore", "score_id_for_ticket"]

MIN_SCORE, MAX_SCORE = 1, 5
_TICKET_SCORE_NAMESPACE = UUID("5f0c2a8e-7b41-4d93-a6e2-1c9b3d7f0a64")


def score_id_for_ticket(ticket_id: UUID) -> UUID:
    """The one id a ticket's score can have."""
    return uuid5(_TICKET_SCORE_NAMESPACE, str(ticket_id))


class SatisfactionScore(Relinkable, TracedAggregate):
    """How satisfied a customer said it was, once."""

    if TYPE_CHECKING:
        customer_id: UUID
        score: int
        comment: str | None
        ticket_id: UUID | None

    class Given(TracedAggregate.Created):
        customer_id: UUID
        score: int
        comment: str | None
        ticket_id: UUID | None
        """The repair the score is about, if any."""

        def apply(self, given: SatisfactionScore) -> None:
            given.customer_id, given.score = self.customer_id, self.score
            given.comment, given.ticket_id = self.comment, self.ticket_id

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def give(
        cls, *, customer_id: UUID, score: int, comment: str | None, ticket_id: UUID | None
    ) -> SatisfactionScore:
        if not MIN_SCORE <= score <= MAX_SCORE:
            raise RuleViolationError("score", f"a score is {MIN_SCORE} to {MAX_SCORE}")
        return cls._create(
            cls.Given,
            id=score_id_for_ticket(ticket_id) if ticket_id else uuid4(),
            customer_id=customer_id,
            score=score,
            comment=comment.strip() if comment and comment.strip() else None,
            ticket_id=ticket_id,
        )
