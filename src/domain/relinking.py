"""Records of one customer that follow it into a merge's survivor, and back when undone.

Every customer-owned aggregate (appointments, tickets, pets, files, interactions, chat
messages, satisfaction scores, packages, invoices, payments) mixes in `Relinkable` and
names its own event in its body, so each keeps its topic and public name
(`crm.pet.relinked`):

    class Pet(Relinkable, TracedAggregate):
        class Relinked(Relinkable.Relinked):
            pass

The record remembers, by merge id, whom it came from, so undoing a merge takes back only
what that merge moved (`MergeCommands`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import TracedAggregate

__all__ = ["Relinkable"]


class Relinkable:
    """A mixin for an aggregate that belongs to one customer (`customer_id`)."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        id: UUID
        customer_id: UUID

        def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None: ...

    class Relinked(TracedAggregate.Event):
        """Moved to the survivor of a merge of its customer, or back when that is undone."""

        customer_id: UUID
        previous_customer_id: UUID
        merge_id: UUID
        undone: bool

        def apply(self, record: Any) -> None:
            record.customer_id = self.customer_id
            if self.undone:
                record.merged_from.pop(self.merge_id, None)
            else:
                record.merged_from[self.merge_id] = self.previous_customer_id

    @property
    def merged_from(self) -> dict[UUID, UUID]:
        """By merge id, the customer it belonged to before that merge moved it (not undone)."""
        merged_from: dict[UUID, UUID] = self.__dict__.setdefault("_merged_from", {})
        return merged_from

    def relink(self, customer_id: UUID, merge_id: UUID, *, undone: bool = False) -> None:
        """Follow the customer into a merge's survivor (or back out of it)."""
        if customer_id != self.customer_id:
            self.trigger_event(
                type(self).Relinked,
                customer_id=customer_id,
                previous_customer_id=self.customer_id,
                merge_id=merge_id,
                undone=undone,
            )
