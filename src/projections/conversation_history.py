"""What interactions, chat messages and satisfaction scores set in their customer's history.

Field names: `interactions[<id>].kind`, `.direction`, `.summary`, `.at`, `.staff_id`;
`messages[<id>].sender`, `.text`; `satisfaction[<id>].score`, `.comment`, `.ticket_id`.
"""

from __future__ import annotations

from typing import Any

from domain.chat import ChatMessage
from domain.interactions import Interaction
from domain.satisfaction import SatisfactionScore
from projections.history_fields import Fields, Recorders, as_json

__all__ = ["RECORDERS"]

RECORDERS = Recorders(
    personal=("interactions[*].summary", "messages[*].text", "satisfaction[*].comment")
)
"""What each event of these aggregates sets in the customer's history."""


@RECORDERS(Interaction.Logged)
def _logged(event: Interaction.Logged, before: Fields) -> Fields:
    return _fields("interactions", event, ("kind", "direction", "summary", "at", "staff_id"))


@RECORDERS(ChatMessage.Posted)
def _posted(event: ChatMessage.Posted, before: Fields) -> Fields:
    return _fields("messages", event, ("sender", "text"))


@RECORDERS(SatisfactionScore.Given)
def _given(event: SatisfactionScore.Given, before: Fields) -> Fields:
    return _fields("satisfaction", event, ("score", "comment", "ticket_id"))


def _fields(collection: str, event: Any, names: tuple[str, ...]) -> Fields:
    prefix = f"{collection}[{event.originator_id}]."
    return {f"{prefix}{name}": as_json(getattr(event, name)) for name in names}
