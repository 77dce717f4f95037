"""The event mapper that encrypts each event's personal fields with its customer's data key.

The library's `Cipher` sees only bytes, never whose event it is, so it cannot choose a key
per customer; a `Mapper` sees the event. For an event class listed in
`domain.personal_data`, the personal values are taken out, encoded with the same
transcoder, encrypted with the subject's `DataKey` (AES-256-GCM, the subject's id bound
in) and stored in the event's state as `_personal` (base64), beside the redacted values.

Reading decrypts and puts them back before upcasting, so an upcaster sees whole events.
When the key has been destroyed (the customer erased) the event reads redacted. When it
is already destroyed as an event is written (an erased customer's appointment cancelled,
say), the personal values are dropped instead of stored: nothing is ever written in clear.

`to_domain_events` decodes a page of the log with one key look-up for all its customers,
for the followers and rebuilds that read the log page by page.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any, cast

from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import resolve_topic

from domain.key_ring import KeyRing
from domain.personal_data import merge, personal_fields, split, subject_of

__all__ = ["PERSONAL_STATE", "ShreddingMapper"]

PERSONAL_STATE = "_personal"
"""The key, in a stored event's state, of its encrypted personal values."""


class ShreddingMapper(Mapper[Any]):
    """A mapper with per-customer encryption of the personal fields."""

    def __init__(self, transcoder: Transcoder, key_ring: KeyRing, **kwargs: Any) -> None:
        super().__init__(transcoder, **kwargs)
        self.key_ring = key_ring
        self._specs = personal_fields()

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        spec = self._specs.get(type(domain_event))
        if spec is None:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        subject = subject_of(type(domain_event), state, cast(Any, domain_event.originator_id))
        personal = split(spec, state)
        if personal and subject is not None:
            key = self.key_ring.data_key(subject, create=True)
            if key is not None:  # None: the subject is erased, its values are dropped
                blob = key.encrypt(self.transcoder.encode(personal))
                state[PERSONAL_STATE] = base64.b64encode(blob).decode()
        shell = object.__new__(type(domain_event))
        object.__setattr__(shell, "__dict__", state)
        return super().to_stored_event(shell)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls, state = self._decoded(stored_event)
        self._open(cls, state, stored_event)
        return self._finished(cls, state, stored_event)

    def to_domain_events(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        """Decode a page of events, fetching the keys of all their customers at once."""
        decoded = [self._decoded(s) for s in stored_events]
        subjects = {
            subject_of(cls, state, cast(Any, s.originator_id))
            for (cls, state), s in zip(decoded, stored_events, strict=True)
            if PERSONAL_STATE in state
        }
        # Reading never creates a key: a missing one reads as erased, never as a new key.
        self.key_ring.prepare(cast(Iterable[Any], subjects - {None}), create=False)
        events = []
        for (cls, state), stored in zip(decoded, stored_events, strict=True):
            self._open(cls, state, stored)
            events.append(self._finished(cls, state, stored))
        return events

    # ---- the steps of decoding --------------------------------------------------------

    def _decoded(self, stored_event: StoredEvent) -> tuple[type[Any], dict[str, Any]]:
        cls = resolve_topic(stored_event.topic)
        stored_state = stored_event.state
        try:
            if self.cipher:
                stored_state = self.cipher.decrypt(stored_state)
            if self.compressor:
                stored_state = self.compressor.decompress(stored_state)
            state: dict[str, Any] = self.transcoder.decode(stored_state)
        except Exception as error:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic"
                f" '{stored_event.topic}', originator_id '{stored_event.originator_id}'"
                f" and originator_version {stored_event.originator_version}: {error}"
            ) from error
        return cls, state

    def _open(self, cls: type[Any], state: dict[str, Any], stored_event: StoredEvent) -> None:
        blob = state.pop(PERSONAL_STATE, None)
        if blob is None:
            return
        subject = subject_of(cls, state, cast(Any, stored_event.originator_id))
        key = self.key_ring.data_key(subject) if subject is not None else None
        if key is None:
            return  # erased: the redacted values stay
        personal = self.transcoder.decode(key.decrypt(base64.b64decode(blob)))
        merge(self._specs.get(cls, {}), state, personal)

    @staticmethod
    def _finished(cls: type[Any], state: dict[str, Any], stored_event: StoredEvent) -> Any:
        # As the library's Mapper.to_domain_event, from the decoded state on.
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event
