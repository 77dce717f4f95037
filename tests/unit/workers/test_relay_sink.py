"""The relay sink with a recording publisher: ack before position, retries, never a skip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from domain.sealing import SecretSealer
from domain.service import CustomerService
from projections.cloudevents import Outgoing
from projections.notifications import Lookups
from workers.relay import Relay, RelayStalledError, RetryPolicy


@dataclass
class Ack:
    duplicate: bool = False


@dataclass
class RecordingPublisher:
    """Publishes nowhere; records batches; fails the first `failures` attempts."""

    failures: int = 0
    batches: list[list[Outgoing]] = field(default_factory=list)
    attempts: int = 0
    pauses: list[float] = field(default_factory=list)
    closed: bool = False

    def publish(self, messages: Sequence[Outgoing]) -> list[Ack]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("nats: no servers available")
        self.batches.append(list(messages))
        return [Ack() for _ in messages]

    def wait_connected(self, timeout: float) -> None:
        self.pauses.append(timeout)

    def close(self) -> None:
        self.closed = True


@dataclass
class MemoryPositions:
    saved: dict[str, int] = field(default_factory=dict)

    def load(self, relay: str) -> int:
        return self.saved.get(relay, 0)

    def save(self, relay: str, position: int, last_event_at: Any = None) -> None:
        self.saved[relay] = max(position, self.saved.get(relay, 0))


def make_relay(publisher: RecordingPublisher, **retry: float) -> Relay:
    return Relay(
        name="relay",
        publisher=publisher,
        positions=MemoryPositions(),  # type: ignore[arg-type]
        head=lambda: 100,
        lookups=Lookups(lambda *_: None),
        retry=RetryPolicy(**retry),
    )


@pytest.fixture
def batch() -> list[tuple[int, Any]]:
    """The log after two registrations: customers and their reservations."""
    service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
    service.register_customer({"first_name": "Ada", "email": "ada@example.com"})
    service.register_customer({"first_name": "Bob"})
    notifications = service.recorder.select_notifications(start=1, limit=100)
    return [(n.id, service.mapper.to_domain_event(n)) for n in notifications]


def test_a_batch_is_published_in_log_order_before_its_position_is_saved(
    batch: list[tuple[int, Any]],
) -> None:
    """Customer events and the welcome email go out in order; then the last position is saved."""
    publisher = RecordingPublisher()
    relay = make_relay(publisher)
    relay.process(batch)
    [sent] = publisher.batches
    assert [m.subject for m in sent] == [
        "crm.customer.registered",
        "crm.notify.email",
        "crm.customer.registered",
    ]
    assert relay.position() == batch[-1][0]


def test_a_failed_publish_is_retried_with_backoff_and_logged(
    batch: list[tuple[int, Any]],
) -> None:
    """Three failures: three warnings with growing pauses, then the batch goes and is saved."""
    publisher = RecordingPublisher(failures=3)
    relay = make_relay(publisher, first_delay=0.1, max_delay=0.3, give_up_after=60)
    with capture_logs() as logs:
        relay.process(batch)
    assert publisher.pauses == [0.1, 0.2, 0.3]
    warnings = [entry for entry in logs if entry["event"] == "relay_publish_failed"]
    assert [w["attempt"] for w in warnings] == [1, 2, 3]
    assert "no servers" in warnings[0]["error"]
    assert len(publisher.batches) == 1 and relay.position() == batch[-1][0]


def test_a_batch_that_cannot_be_published_is_never_skipped(
    batch: list[tuple[int, Any]],
) -> None:
    """Past the retry budget the relay raises for the runner, and the position stays put."""
    publisher = RecordingPublisher(failures=1000)
    relay = make_relay(publisher, first_delay=1, max_delay=1, give_up_after=0.5)
    with pytest.raises(RelayStalledError), capture_logs() as logs:
        relay.process(batch)
    assert relay.position() == 0
    assert any(entry["event"] == "relay_stalled" for entry in logs)


def test_a_batch_of_internal_events_only_moves_the_position(
    batch: list[tuple[int, Any]],
) -> None:
    """Reservations publish nothing, but the relay steps over them."""
    from domain.reservations import Reservation

    internal = [(p, e) for p, e in batch if isinstance(e, Reservation.Event)]
    publisher = RecordingPublisher()
    relay = make_relay(publisher)
    relay.process(internal)
    assert publisher.batches == [] and relay.position() == internal[-1][0]


def test_a_dropped_relay_closes_its_publisher() -> None:
    """The runner drops a failed sink without closing it: the connection goes with it."""
    publisher = RecordingPublisher()
    relay = make_relay(publisher)
    del relay
    assert publisher.closed
