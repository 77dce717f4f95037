"""Who is acting and on behalf of which request: bound by the entry points, read by events.

Every event records the actor and the correlation id it was caused by. The gateway binds
them per request; `asyncio.to_thread` copies context variables into the worker thread,
so the events created there see them without any argument threading through the domain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["acting_as", "current_actor", "current_correlation_id"]

SYSTEM_ACTOR = "system"

_actor: ContextVar[str] = ContextVar("actor", default=SYSTEM_ACTOR)
_correlation_id: ContextVar[str] = ContextVar("correlation_id", default="")


def current_actor() -> str:
    """The subject (JWT `sub`) on whose behalf events are being created."""
    return _actor.get()


def current_correlation_id() -> str:
    """The request id that caused the events being created ('' outside a request)."""
    return _correlation_id.get()


@contextlib.contextmanager
def acting_as(actor: str, correlation_id: str = "") -> Iterator[None]:
    """Bind the actor and correlation id for the events created inside the block."""
    actor_token = _actor.set(actor)
    correlation_token = _correlation_id.set(correlation_id)
    try:
        yield
    finally:
        _actor.reset(actor_token)
        _correlation_id.reset(correlation_token)
