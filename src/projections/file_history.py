"""What customer files' events set in their customer's history.

Field names: `files[<file_id>].name`, `.size`, `.content_type`, `.sha256`. An upload sets
them from null; a delete clears them. The name is the customer's personal data, nulled
with the rest of the history on erasure.
"""

from __future__ import annotations

from domain.files import CustomerFile
from projections.history_fields import Fields, Recorders, removed_fields

__all__ = ["RECORDERS"]

RECORDERS = Recorders(personal=("files[*].name",))
"""What each `CustomerFile` event sets in the customer's history."""


@RECORDERS(CustomerFile.Uploaded)
def _uploaded(event: CustomerFile.Uploaded, before: Fields) -> Fields:
    prefix = f"files[{event.originator_id}]."
    return {
        f"{prefix}name": event.name,
        f"{prefix}size": event.size,
        f"{prefix}content_type": event.content_type,
        f"{prefix}sha256": event.sha256,
    }


@RECORDERS(CustomerFile.Deleted)
def _deleted(event: CustomerFile.Deleted, before: Fields) -> Fields:
    return removed_fields(before, f"files[{event.originator_id}].")
