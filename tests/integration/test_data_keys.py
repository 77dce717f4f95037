"""Data keys in PostgreSQL: wrapped by the key-encryption key, shared, destroyed for good."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from domain.service import CustomerService
from infrastructure.data_keys import LostKeyEncryptionKeyError
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.settings import Settings


@pytest.fixture
def own_settings(make_settings: Any, database_url: str, nats_url: str) -> Iterator[Settings]:
    """Settings on a fresh schema of its own, migrated."""
    settings: Settings = make_settings(
        database_url=database_url, nats_url=nats_url, db_schema=f"k_{secrets.token_hex(5)}"
    )
    migrate_event_store(settings)
    yield settings
    drop_schema(database_url, settings.db_schema)


@pytest.fixture
def two_services(own_settings: Settings) -> Iterator[tuple[CustomerService, CustomerService]]:
    """Two processes' worth of service on one schema: each with its own key cache."""
    first, second = build_service(own_settings), build_service(own_settings)
    yield first, second
    first.close()
    second.close()


def rows(service: CustomerService, statement: str, *args: Any) -> list[dict[str, Any]]:
    schema = service.recorder.datastore.schema  # type: ignore[attr-defined]
    with service.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(statement.format(schema=schema), args)
        return list(cursor.fetchall())


def test_a_registration_stores_a_wrapped_key_another_process_can_open(
    two_services: tuple[CustomerService, CustomerService],
) -> None:
    """The key row is written with the registration; a second service reads the customer."""
    first, second = two_services
    customer_id = first.register_customer(
        {"first_name": "Ada", "email": "ada@example.com"}
    ).aggregate_id
    (row,) = rows(first, "SELECT * FROM {schema}.data_keys WHERE subject_id = %s", customer_id)
    key = first.key_ring.data_key(customer_id)
    assert row["wrapped_key"] is not None and row["destroyed_at"] is None
    assert key is not None
    assert second.get_customer(customer_id).profile.email == "ada@example.com"
    events = rows(
        first, "SELECT state FROM {schema}.crm_events WHERE originator_id = %s", customer_id
    )
    assert b"ada@example.com" not in bytes(events[0]["state"])


def test_concurrent_group_saves_give_every_customer_one_key(
    two_services: tuple[CustomerService, CustomerService],
) -> None:
    """Forty registrations from two services at once: forty keys, every customer readable."""
    first, second = two_services
    with ThreadPoolExecutor(8) as pool:
        receipts = list(
            pool.map(
                lambda i: (first, second)[i % 2].register_customer({"first_name": f"c{i}"}),
                range(40),
            )
        )
    ids = [r.aggregate_id for r in receipts]
    keyed = rows(first, "SELECT subject_id FROM {schema}.data_keys WHERE subject_id = ANY(%s)", ids)
    assert len(keyed) == 40
    for index, customer_id in enumerate(ids):
        reader = (second, first)[index % 2]
        assert reader.get_customer(customer_id).profile.first_name == f"c{index}"


def test_an_erasure_leaves_a_tombstone_no_process_can_read_past(
    own_settings: Settings,
) -> None:
    """After the erasure the row has no key; a fresh process reads the customer redacted."""
    service = build_service(own_settings)
    try:
        customer_id = service.register_customer({"first_name": "Ada"}).aggregate_id
        service.erase_customer(customer_id, expected_version=1)
        (row,) = rows(
            service, "SELECT * FROM {schema}.data_keys WHERE subject_id = %s", customer_id
        )
        assert row["wrapped_key"] is None and row["destroyed_at"] is not None
    finally:
        service.close()
    fresh = build_service(own_settings)
    try:
        customer = fresh.get_customer(customer_id)
        assert customer.erased and customer.profile.first_name == ""
        assert fresh.key_ring.data_key(customer_id, create=True) is None, "never a new key"
    finally:
        fresh.close()


def test_another_key_encryption_key_stops_the_start_with_one_line(
    own_settings: Settings,
) -> None:
    """A service started with a KEK other than the table's refuses, naming the setting."""
    other = base64.urlsafe_b64encode(os.urandom(32)).decode()
    wrong = own_settings.model_copy(update={"key_encryption_key": _secret(other)})
    with pytest.raises(LostKeyEncryptionKeyError) as refused:
        build_service(wrong)
    message = str(refused.value)
    assert message.startswith("CUSTOMERS_KEY_ENCRYPTION_KEY: does not open the data keys")
    assert "\n" not in message and other not in message


def test_the_worker_process_exits_with_the_message_for_a_lost_key(
    own_settings: Settings,
) -> None:
    """The gateway started with a wrong KEK prints one line and exits non-zero."""
    assert own_settings.database_url is not None and own_settings.nats_url is not None
    env = {
        **os.environ,
        "CUSTOMERS_DATABASE_URL": own_settings.database_url,
        "CUSTOMERS_NATS_URL": own_settings.nats_url,
        "CUSTOMERS_DB_SCHEMA": own_settings.db_schema,
        "CUSTOMERS_HTTP_PORT": "1",
        "CUSTOMERS_JWT_SECRET": secrets.token_urlsafe(32),
        "CUSTOMERS_SECRET_KEY": _fernet(),
        "CUSTOMERS_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("CUSTOMERS_KEY_ENCRYPTION_KEY: does not open the data keys")
    assert "Traceback" not in done.stderr


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def _fernet() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def test_a_group_save_of_new_customers_fetches_their_keys_in_one_statement(
    own_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten registrations saved together cost one key look-up, not one per event."""
    from domain.customers import Customer
    from domain.values import Profile
    from infrastructure.data_keys import PostgresKeyRing

    service = build_service(own_settings)
    try:
        fetches: list[int] = []
        original = PostgresKeyRing._fetch

        def counted(self: PostgresKeyRing, subject_ids: list[Any], *, create: bool) -> None:
            fetches.append(len(subject_ids))
            original(self, subject_ids, create=create)

        monkeypatch.setattr(PostgresKeyRing, "_fetch", counted)
        customers = [
            Customer.register(customer_number=9000 + i, profile=Profile(first_name=f"n{i}"))
            for i in range(10)
        ]
        service.group_commit.save([e for c in customers for e in c.collect_events()])
        assert fetches == [10]
        assert service.get_customer(customers[3].id).profile.first_name == "n3"
        assert fetches == [10], "reading back finds the key cached"
    finally:
        service.close()


def test_a_page_of_the_log_is_decoded_with_one_key_look_up(
    own_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower's page of twenty customers' events costs one look-up, and creates no key."""
    from infrastructure.data_keys import PostgresKeyRing

    writer, reader = build_service(own_settings), build_service(own_settings)
    try:
        ids = [writer.register_customer({"first_name": f"p{i}"}).aggregate_id for i in range(20)]
        fetches: list[tuple[int, bool]] = []
        original = PostgresKeyRing._fetch

        def counted(self: PostgresKeyRing, subject_ids: list[Any], *, create: bool) -> None:
            fetches.append((len(subject_ids), create))
            original(self, subject_ids, create=create)

        monkeypatch.setattr(PostgresKeyRing, "_fetch", counted)
        page = reader.decoded(reader.recorder.select_notifications(start=1, limit=1000))
        names = {e.originator_id: e.profile.first_name for _, e in page if hasattr(e, "profile")}
        assert [names[i] for i in ids] == [f"p{i}" for i in range(20)]
        assert fetches == [(20, False)]
    finally:
        writer.close()
        reader.close()


def test_two_gateways_erasing_at_once_record_one_erasure(
    two_services: tuple[CustomerService, CustomerService],
) -> None:
    """Concurrent erasures from two processes: both answer the same, one event is stored."""
    from domain.customers import Customer

    first, second = two_services
    customer_id = first.register_customer({"first_name": "Ada", "email": "a@x.org"}).aggregate_id
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda i: (first, second)[i % 2].erase_customer(customer_id, expected_version=1),
                range(4),
            )
        )
    assert {(a.version, tuple(a.result.items())) for a in answers} == {
        (2, (("id", customer_id), ("version", 2), ("erased", True)))
    }
    erasures = [e for e in first.customer_events(customer_id) if isinstance(e, Customer.Erased)]
    assert len(erasures) == 1


def test_the_key_cache_keeps_only_recently_used_keys(own_settings: Settings) -> None:
    """Keys past their cache time leave the cache, so it does not grow with every customer
    ever read (a 10-minute soak saw the processes grow 30% before this)."""
    service = build_service(own_settings)
    try:
        ring = service.key_ring
        ring._cache_seconds = 0.05  # type: ignore[attr-defined]
        first = [
            service.register_customer({"first_name": f"Early {n}"}).aggregate_id for n in range(5)
        ]
        time.sleep(0.1)
        late = service.register_customer({"first_name": "Late"}).aggregate_id
        assert late in ring._cache  # type: ignore[attr-defined]
        assert not set(first) & set(ring._cache)  # type: ignore[attr-defined]
        # A dropped key is read again from the table, not lost.
        assert ring.data_key(first[0]) is not None
    finally:
        service.close()


def test_a_rotated_key_encryption_key_opens_every_customer_once_rewrapped(
    own_settings: Settings,
) -> None:
    """Rotation: new key + old as previous reads both; `customers keys rewrap` re-wraps every
    stored key; then the new key alone opens everything and the old one opens nothing."""
    assert own_settings.key_encryption_key is not None
    old = own_settings.key_encryption_key.get_secret_value()
    new = base64.urlsafe_b64encode(os.urandom(32)).decode()
    before = build_service(own_settings)
    try:
        kept = [
            before.register_customer({"first_name": f"c{i}", "email": f"c{i}@example.com"})
            for i in range(3)
        ]
        erased = before.register_customer({"first_name": "gone"})
        before.erase_customer(erased.aggregate_id, expected_version=erased.version)
        (wrapped_with_old,) = rows(
            before, "SELECT count(*) AS n FROM {schema}.data_keys WHERE wrapped_key IS NOT NULL"
        )
    finally:
        before.close()
    rotating = own_settings.model_copy(
        update={"key_encryption_key": _secret(new), "previous_key_encryption_keys": _secret(old)}
    )
    during = build_service(rotating)
    try:
        assert during.get_customer(kept[0].aggregate_id).profile.email == "c0@example.com"
        late = during.register_customer({"first_name": "late", "email": "late@example.com"})
    finally:
        during.close()

    rewrap = [sys.executable, "-m", "workers", "keys", "rewrap", "--batch", "7"]
    env = _env_of(rotating)
    done = subprocess.run(rewrap, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = f"rewrapped {wrapped_with_old['n']} data keys with CUSTOMERS_KEY_ENCRYPTION_KEY"
    assert done.stdout.strip() == expected
    again = subprocess.run(rewrap, env=env, capture_output=True, text=True, timeout=120)
    assert again.stdout.startswith("rewrapped 0 data keys"), again.stdout + again.stderr

    only_new = own_settings.model_copy(update={"key_encryption_key": _secret(new)})
    after = build_service(only_new)
    try:
        emails = [after.get_customer(r.aggregate_id).profile.email for r in (*kept, late)]
        assert emails == ["c0@example.com", "c1@example.com", "c2@example.com", "late@example.com"]
        assert after.get_customer(erased.aggregate_id).erased
    finally:
        after.close()
    with pytest.raises(LostKeyEncryptionKeyError):
        build_service(own_settings)  # the old key alone: nothing is wrapped with it any more


def _env_of(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None and settings.key_encryption_key is not None
    assert settings.previous_key_encryption_keys is not None and settings.secret_key is not None
    return {
        **os.environ,
        "CUSTOMERS_DATABASE_URL": settings.database_url,
        "CUSTOMERS_DB_SCHEMA": settings.db_schema,
        "CUSTOMERS_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CUSTOMERS_KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),
        "CUSTOMERS_PREVIOUS_KEY_ENCRYPTION_KEYS": (
            settings.previous_key_encryption_keys.get_secret_value()
        ),
    }


def test_another_process_erasure_hides_past_versions_and_events_at_once(
    two_services: tuple[CustomerService, CustomerService],
) -> None:
    """A process that has the key cached shows no earlier version or event in clear once
    another process erased the customer (the current state is redacted by the event)."""
    first, second = two_services
    customer_id = first.register_customer(
        {"first_name": "Ada", "email": "ada@example.com"}
    ).aggregate_id
    assert first.customer_as_it_was(customer_id, version=1).profile.email == "ada@example.com"
    second.erase_customer(customer_id, expected_version=1)
    assert first.customer_as_it_was(customer_id, version=1).profile.email is None
    (registered, _) = list(first.customer_events(customer_id))
    assert registered.profile.email is None and registered.profile.first_name == ""
