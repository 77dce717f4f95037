"""A Hypothesis state machine walking repair tickets through their graph.

Rules open tickets and ask for every status from every status, with stale versions,
comment publicly and internally, blank or not. A simple model predicts each refusal; the
invariants check that a ticket's timeline is always a path of the graph from `new`, that
nothing happens to a ticket after a final state, and that replaying the recorded events
gives the live state.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.errors import (
    ConflictError,
    DomainError,
    InvalidTransitionError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.sealing import SecretSealer
from domain.service import CustomerService, Receipt
from domain.tickets import FINAL_STATUSES, STATUSES, TRANSITIONS, Ticket

SETTINGS = settings(max_examples=100, stateful_step_count=30, deadline=None)

Reason = tuple[type[DomainError], str | None]


@dataclass
class Expected:
    status: str = "new"
    version: int = 1
    timeline: list[str] = field(default_factory=lambda: ["new"])
    comments: list[bool] = field(default_factory=list)
    """Public or not, in order."""


def outcome(command: Callable[[], Receipt], reasons: set[Reason]) -> Receipt | None:
    """Run a command: it succeeds when no reason to refuse it exists, else fails for one of them."""
    try:
        receipt = command()
    except DomainError as error:
        assert reasons, f"refused without a reason: {error!r}"
        assert (type(error), error.field) in reasons, f"{error!r} is none of {reasons}"
        return None
    assert not reasons, f"accepted although {reasons}"
    return receipt


class TicketGraph(RuleBasedStateMachine):
    """A few repair tickets of one customer."""

    def __init__(self) -> None:
        super().__init__()
        self.service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
        self.customer_id: UUID | None = None
        self.expected: dict[UUID, Expected] = {}

    @initialize()
    def a_customer_with_a_ticket(self) -> None:
        self.customer_id = self.service.register_customer({"first_name": "Ann"}).aggregate_id
        self.open()

    def pick(self, data: st.DataObject) -> UUID:
        return data.draw(st.sampled_from(sorted(self.expected, key=str)))

    @rule()
    def open(self) -> None:
        assert self.customer_id is not None
        receipt = self.service.open_ticket(self.customer_id, "Screen", "Broken", {"type": "phone"})
        self.expected[receipt.aggregate_id] = Expected()

    @rule(data=st.data(), status=st.sampled_from(STATUSES), stale=st.booleans())
    def change_status(self, data: st.DataObject, status: str, stale: bool) -> None:
        ticket_id = self.pick(data)
        expected = self.expected[ticket_id]
        reasons: set[Reason] = set()
        if stale:
            reasons.add((VersionMismatchError, None))
        elif status not in TRANSITIONS[expected.status]:
            reasons.add((InvalidTransitionError, "status"))
        receipt = outcome(
            lambda: self.service.change_ticket_status(
                ticket_id,
                status,
                "note",
                expected_version=expected.version - 1 if stale else expected.version,
            ),
            reasons,
        )
        if receipt is not None:
            expected.status = status
            expected.timeline.append(status)
            expected.version += 1

    @rule(data=st.data(), text=st.sampled_from(["Parts ordered", " "]), public=st.booleans())
    def comment(self, data: st.DataObject, text: str, public: bool) -> None:
        ticket_id = self.pick(data)
        expected = self.expected[ticket_id]
        reasons: set[Reason] = set()
        if expected.status in FINAL_STATUSES:
            reasons.add((ConflictError, "status"))
        if not text.strip():
            reasons.add((RuleViolationError, "text"))
        receipt = outcome(
            lambda: self.service.comment_on_ticket(ticket_id, text, public=public), reasons
        )
        if receipt is not None:
            expected.comments.append(public)
            expected.version += 1

    @invariant()
    def every_ticket_is_as_the_model_expects(self) -> None:
        for ticket_id, expected in self.expected.items():
            ticket = self.service.get_ticket(ticket_id)
            assert ticket.status in STATUSES
            assert (ticket.status, ticket.version) == (expected.status, expected.version)
            assert [s.status for s in ticket.timeline] == expected.timeline
            assert [c.public for c in ticket.comments] == expected.comments
            assert ticket.public_comments() == [c for c in ticket.comments if c.public]

    @invariant()
    def every_timeline_is_a_path_of_the_graph(self) -> None:
        for ticket_id in self.expected:
            timeline = self.service.get_ticket(ticket_id).timeline
            assert timeline[0].status == "new"
            for before, after in itertools.pairwise(timeline):
                assert after.previous_status == before.status
                assert after.status in TRANSITIONS[before.status]

    @invariant()
    def nothing_happens_after_a_final_state(self) -> None:
        for ticket_id in self.expected:
            events = list(self.service.events.get(ticket_id))
            finals = [
                i
                for i, e in enumerate(events)
                if isinstance(e, Ticket.StatusChanged) and e.status in FINAL_STATUSES
            ]
            assert len(finals) <= 1
            if finals:
                assert finals[0] == len(events) - 1

    @invariant()
    def replaying_the_recorded_events_gives_the_live_state(self) -> None:
        for ticket_id in self.expected:
            state: Any = None
            for event in self.service.events.get(ticket_id):
                state = event.mutate(state)
            live = self.service.get_ticket(ticket_id)
            assert _state(state) == _state(live)


def _state(ticket: Ticket) -> dict[str, Any]:
    return {k: v for k, v in vars(ticket).items() if k != "_pending_events"}


TicketGraph.TestCase.settings = SETTINGS
TestTicketGraph = TicketGraph.TestCase
