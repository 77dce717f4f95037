"""The issue's done-when: after an erasure, no table and no stream message holds the
customer's email, phone or name, in clear or in the obvious encodings.

A customer with every kind of personal data (profile, address, note, contact, equipment,
appointment, ticket, portal invite, a pet and its vet, a logged call, chat both ways, a
satisfaction comment, a file whose bytes hold the name, a loyalty entry, a stored card)
goes through the real event store, every read model (followed live) and the relay to a
NATS of the test's own; the same search first finds the values everywhere (so it can
fail), then finds none after the erasure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from psycopg import sql

from domain.service import CustomerService
from gateway import create_app
from gateway.login_guard import TABLE, login_key
from infrastructure.servers import EmbeddedNats
from infrastructure.settings import Settings
from projections.catalog import READ_MODELS
from workers.relay import Relay, RelayPositions, open_relay

Bearer = Callable[..., dict[str, str]]


@pytest.fixture
def relay(
    api_settings: Settings, service: CustomerService, server_data_dir: Path
) -> Iterator[tuple[Relay, str]]:
    """A relay on the session's schema, from the head of its log, to a NATS of its own."""
    nats_server = EmbeddedNats(server_data_dir / "nats-erasure", keep_data=False)
    nats_server.start()
    relay = open_relay(api_settings.model_copy(update={"nats_url": nats_server.url}), service)
    positions = RelayPositions(service.recorder.datastore, api_settings.db_schema)  # type: ignore[attr-defined]
    positions.save("relay", service.recorder.max_notification_id() or 0)
    yield relay, nats_server.url
    relay.close()
    nats_server.close()


def relay_new_events(relay: Relay, service: CustomerService) -> None:
    """What the relay's follower does, page by page, up to the head of the log."""
    while True:
        notifications = service.recorder.select_notifications(
            start=relay.position(), limit=100, inclusive_of_start=False
        )
        if not notifications:
            return
        relay.process(service.decoded(notifications))


def needles(email: str, phone: str, names: tuple[str, ...]) -> list[bytes]:
    """The values in clear (case-folded) and base64-encoded."""
    clear = [email.lower().encode(), phone.encode(), *(n.lower().encode() for n in names)]
    return clear + [base64.b64encode(value) for value in clear]


def found_in(blob: bytes, wanted: list[bytes]) -> list[bytes]:
    lowered = blob.lower()
    return [value for value in wanted if value.lower() in lowered]


def database_hits(service: CustomerService, schema: str, wanted: list[bytes]) -> dict[str, Any]:
    """Every table of the session's schemas (service and read models), every column."""
    hits: dict[str, Any] = {}
    with service.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE' AND (table_schema = %s OR table_schema LIKE %s)",
            (schema, f"{schema}\\_%"),
        )
        tables = [(r["table_schema"], r["table_name"]) for r in cursor.fetchall()]
        for table_schema, table in tables:
            cursor.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table_schema, table)))
            for row in cursor.fetchall():
                for column, value in row.items():
                    # bytea (the events' JSON) as bytes and in its hex text form; the rest as text
                    blob = bytes(value) if isinstance(value, bytes | memoryview) else b""
                    blob += str(value).encode() + (blob.hex().encode() if blob else b"")
                    if found := found_in(blob, wanted):
                        hits[f"{table_schema}.{table}.{column}"] = found
    return hits


def login_attempts(service: CustomerService, schema: str, login: str) -> int:
    """Rows of the failed-login counter for `login` (stored as a hash of it)."""
    with service.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            sql.SQL("SELECT count(*) AS n FROM {} WHERE login_key = %s").format(
                sql.Identifier(schema, TABLE)
            ),
            (login_key(login),),
        )
        return int(cursor.fetchone()["n"])


async def stream_hits(url: str, wanted: list[bytes]) -> tuple[int, dict[int, Any]]:
    """Every message on the CRM stream, data and headers: how many, and where values are."""
    client = await nats.connect(url)
    hits: dict[int, Any] = {}
    try:
        js = client.jetstream()
        state = (await js.stream_info("CRM")).state
        count = 0
        for sequence in range(state.first_seq, state.last_seq + 1):
            with contextlib.suppress(NotFoundError):  # deleted
                message = await js.get_msg("CRM", sequence)
                count += 1
                blob = (message.data or b"") + str(message.headers).encode()
                if found := found_in(blob, wanted):
                    hits[sequence] = (message.subject, found)
        return count, hits
    finally:
        await client.close()


async def wait_until(read_models: list[Any], position: int) -> None:
    deadline = time.monotonic() + 30
    while any(m.position() < position for m in read_models):
        assert time.monotonic() < deadline, "the read models did not catch up"
        await asyncio.sleep(0.1)


@pytest.fixture
async def client(aiohttp_client: Any, api_settings: Settings, service: CustomerService) -> Any:
    """A gateway of a pet-care business, so that pets are among the customer's records."""
    settings = api_settings.model_copy(update={"business_type": "pet_care"})
    return await aiohttp_client(create_app(settings, service=service))


async def test_after_an_erasure_no_table_and_no_message_holds_the_customer(
    client: Any,
    bearer: Bearer,
    service: CustomerService,
    api_settings: Settings,
    followed: Any,
    relay: tuple[Relay, str],
) -> None:
    """Search the whole database and the whole stream: found before, none after erasure."""
    sink, nats_url = relay
    tag = secrets.token_hex(4)
    email = f"ada.{tag}@example.com"
    phone = f"415{200 + secrets.randbelow(700)}{1000 + secrets.randbelow(9000)}"
    # Letters only: names with digits are in no typo vocabulary, and its tables must be
    # searched too (a word's deletions hold the word).
    letters = tag.translate(str.maketrans("0123456789", "ghijklmnop"))
    first, last = f"Adelaide{letters}", f"Byronson{letters}"
    with contextlib.ExitStack() as stack:
        models = [stack.enter_context(followed(name)) for name in READ_MODELS]
        # A customer with every kind of personal data, and what staff do with them.
        body = {
            "first_name": first,
            "last_name": last,
            "email": email,
            "mobile_phone": f"+1{phone}",
            "notification_channels": ["email", "sms"],
            "addresses": [{"kind": "site", "line1": f"1 {last} Street", "city": "London"}],
        }
        keyed = {**bearer(), "Idempotency-Key": f"erase-{tag}"}  # its record is searched too
        created = await client.post("/v1/customers", json=body, headers=keyed)
        assert created.status == 201, await created.text()
        customer_id = (await created.json())["id"]
        base = f"/v1/customers/{customer_id}"
        for path, part in (
            ("notes", {"text": f"Ask for {first} {last}, {email}", "urgent": True}),
            ("contacts", {"name": f"{first} {last}", "email": email, "phone": f"+1{phone}"}),
            ("systems", {"system_type": "alarm", "login": email, "secret": "hunter2"}),
        ):
            response = await client.post(f"{base}/{path}", json=part, headers=bearer())
            assert response.status == 201, await response.text()
        starts = datetime.now(UTC) + timedelta(days=2)
        booking = {
            "customer_id": customer_id,
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=1)).isoformat(),
            "notes": f"{first} {last} calls {phone} first",
        }
        ticket = {
            "customer_id": customer_id,
            "subject": "Broken screen",
            "problem": f"{first} dropped it; call {phone}",
            "device": {"type": "phone", "make": "Acme", "serial": f"SN-{last}"},
        }
        for path, payload in (("/v1/appointments", booking), ("/v1/tickets", ticket)):
            response = await client.post(path, json=payload, headers=bearer())
            assert response.status == 201, await response.text()
        ticket_id = (await response.json())["id"]
        portal = bearer("customer", customer_id=customer_id)
        for path, payload, headers in (
            (
                "pets",
                {
                    "name": f"{first}'s dog",
                    "species": "dog",
                    "notes": f"Owner {email}",
                    "vet": {"name": f"Dr {last}", "phone": f"+1{phone}"},
                },
                bearer(),
            ),
            (
                "interactions",
                {"kind": "call", "direction": "inbound", "summary": f"{first} rang from {phone}"},
                bearer(),
            ),
            ("messages", {"text": f"Dear {first} {last}, your dog is ready"}, bearer()),
            ("messages", {"text": f"Thanks, {first} here, reach me at {email}"}, portal),
            (
                "satisfaction",
                {"score": 4, "comment": f"{first} {last} was happy", "ticket_id": ticket_id},
                portal,
            ),
            ("loyalty", {"points": 10, "reason": f"{first} {last} referred a friend"}, bearer()),
            (
                "cards",
                {
                    "provider": "stripe",
                    "token": f"tok_{last}",
                    "brand": "visa",
                    "last4": "4242",
                    "exp_month": 12,
                    "exp_year": datetime.now(UTC).year + 2,
                },
                bearer(),
            ),
        ):
            response = await client.post(f"{base}/{path}", json=payload, headers=headers)
            assert response.status == 201, await response.text()
        # A file whose bytes hold the customer's name (and a marker only the bytes hold):
        # its content is stored apart from the events, and must go too.
        marker = f"gatecode-{tag}-inside"
        text_file = f"Site plan of {first} {last}: {marker}\n".encode()
        uploaded = await client.post(
            f"{base}/files",
            data=text_file,
            headers={**bearer(), "Content-Disposition": f'attachment; filename="{last}.txt"'},
        )
        assert uploaded.status == 201, await uploaded.text()
        invited = await client.post(f"{base}/portal/invite", headers=bearer())
        assert invited.status == 202, await invited.text()
        wrong = {"login": email, "password": "not the password"}  # a failed-login count
        assert (await client.post("/v1/auth/login", json=wrong)).status == 401
        patched = await client.patch(
            base, json={"last_name": f"{last}x"}, headers={**bearer(), "If-Match": '"4"'}
        )
        assert patched.status == 200, await patched.text()

        wanted = needles(email, phone, (first, last, marker))
        head = service.recorder.max_notification_id() or 0
        await wait_until(models, head)
        await asyncio.to_thread(relay_new_events, sink, service)
        before = database_hits(service, api_settings.db_schema, wanted)
        published, on_stream = await stream_hits(nats_url, wanted)
        schema = api_settings.db_schema
        tables = {hit.rsplit(".", 1)[0] for hit in before}
        assert {f"{schema}_search.customers", f"{schema}_history.history"} <= tables, before
        assert {f"{schema}_search.search_words", f"{schema}_search.search_word_deletions"} <= (
            tables
        ), before
        assert f"{schema}_tickets.tickets" in tables, before
        assert {
            f"{schema}_pets.pets",
            f"{schema}_conversations.interactions",
            f"{schema}_conversations.messages",
            f"{schema}_conversations.satisfaction",
            f"{schema}_accounts.loyalty_entries",
            f"{schema}_accounts.cards",
        } <= tables, before
        assert {f"{schema}.file_chunks", f"{schema}_files.files"} <= tables, before
        marked = {hit for hit, found in before.items() if marker.encode() in found}
        assert marked == {f"{schema}.file_chunks.data"}, "the file's bytes: only there"
        assert "crm.customer_file.uploaded" in {subject for subject, _ in on_stream.values()}
        assert not [hit for hit in on_stream.values() if marker.encode() in hit[1]], (
            "no file content ever reaches the stream, only its metadata"
        )
        assert f"{schema}.crm_events" not in tables, "events hold personal data encrypted only"
        subjects = {subject for subject, _ in on_stream.values()}
        assert {"crm.notify.email", "crm.notify.staff", "crm.pet.added"} <= subjects, subjects
        assert published >= 7, "the search finds what is there"
        assert login_attempts(service, schema, email) == 1

        erased = await client.post(f"{base}/erase", headers={**bearer("admin"), "If-Match": '"5"'})
        assert erased.status == 200, await erased.text()
        await wait_until(models, service.recorder.max_notification_id() or 0)
        await asyncio.to_thread(relay_new_events, sink, service)

        assert database_hits(service, api_settings.db_schema, wanted) == {}
        assert login_attempts(service, schema, email) == 0, "nor a hash of the login"
        remaining, on_stream = await stream_hits(nats_url, wanted)
        assert on_stream == {}
        assert 0 < remaining < published, "the erasure's own message stays, the rest go"
