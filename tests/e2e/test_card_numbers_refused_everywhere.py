"""The issue's done-when for cards: a full card number sent anywhere is refused with 422
naming where, and is then in no table of the database and no line of any log.

The processes are the ones production runs (`python -m gateway`, `python -m workers worker
all`), at the production log level and format, on a schema of the test's own. Test card
numbers of three networks, written as one run of digits, in groups of four with spaces
and with dashes, are sent in every kind of place a request carries data: names, notes,
custom field values and keys, tickets, appointments, pets and their vet, logged calls,
chat messages, satisfaction comments, loyalty reasons, card tokens, package names, a
merge patch, a number where a number is expected, a malformed body, the login, a CSV
import (cell and header), a query string, the path, and the headers that are logged or
stored (X-Request-ID, Idempotency-Key, an import's file name). Every table
of every schema of the stack is then searched (text, bytea raw and in hex, base64), and
all the processes' output, for each number as digits and as sent. A value that was stored
(the name of a customer registered alongside) is found by the same search: it can fail.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from psycopg import sql
from tests.e2e.processes import run_stack_logged

from infrastructure.database import drop_schema
from infrastructure.settings import Settings
from infrastructure.tokens import issue_token
from projections.base import read_model_schema
from projections.catalog import READ_MODELS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NUMBERS = ("4111111111111111", "5555555555554444", "378282246310005")
"""Visa, Mastercard, Amex test cards."""


def written(number: str) -> list[str]:
    """As people write it: digits, groups with spaces, groups with dashes."""
    groups = [number[0:4], number[4:10], number[10:]] if len(number) == 15 else None
    groups = groups or [number[i : i + 4] for i in range(0, len(number), 4)]
    return [number, " ".join(groups), "-".join(groups)]


@pytest.fixture
def stack_settings(
    make_settings: Any, database_url: str, nats_url: str, db_schema: str
) -> Iterator[Settings]:
    settings = make_settings(
        database_url=database_url,
        nats_url=nats_url,
        db_schema=f"{db_schema}_cards",
        log_format="json",
        business_type="pet_care",  # the pets routes too
    )
    yield settings
    for name in READ_MODELS:
        drop_schema(database_url, read_model_schema(settings.db_schema, name))
    drop_schema(database_url, settings.db_schema)


class Scenario:
    """The requests, and for each the field the 422 must name."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.auth = {"Authorization": f"Bearer {token}"}
        self.tag = secrets.token_hex(4)
        self.kept = f"Cardholder{self.tag}"
        """A name that is stored: the search must find it."""
        self.answers: list[tuple[str, int, list[str | None]]] = []
        self.customer_id = ""

    async def run(self) -> None:
        async with aiohttp.ClientSession(self.base, headers=self.auth) as http:
            customer = await self._ok(http.post("/v1/customers", json={"first_name": self.kept}))
            cid = self.customer_id = customer["id"]
            version = 1
            await self._ok(http.post(f"/v1/customers/{cid}/cards", json=self._card("pm_ok")))
            for number in NUMBERS:
                for sent in written(number):
                    for request, field in self._requests(cid, sent, version):
                        await self._refused(http, request, field)

    def _card(self, token: str) -> dict[str, Any]:
        return {
            "provider": "stripe",
            "token": token,
            "brand": "visa",
            "last4": "1111",
            "exp_month": 12,
            "exp_year": datetime.now(UTC).year + 2,
        }

    def _requests(self, cid: str, sent: str, version: int) -> list[tuple[dict[str, Any], str]]:
        starts = datetime.now(UTC) + timedelta(days=3)
        digits = sent.replace(" ", "").replace("-", "")
        csv = f"First Name;Notes\nAda;{sent}\n".encode()
        return [
            (
                {"method": "POST", "url": "/v1/customers", "json": {"first_name": sent}},
                "first_name",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/customers",
                    "json": {"first_name": "Ok", "custom_fields": {"po": f"card {sent}"}},
                },
                "custom_fields.po",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/customers",
                    "json": {"first_name": "Ok", "custom_fields": {sent: "x"}},
                },
                "custom_fields.<key 0>",
            ),
            (
                {"method": "POST", "url": f"/v1/customers/{cid}/notes", "json": {"text": sent}},
                "text",
            ),
            (
                {
                    "method": "PATCH",
                    "url": f"/v1/customers/{cid}",
                    "data": f'{{"last_name": "{sent}"}}',
                    "headers": {
                        "Content-Type": "application/merge-patch+json",
                        "If-Match": f'"{version}"',
                    },
                },
                "last_name",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/tickets",
                    "json": {
                        "customer_id": cid,
                        "subject": "Screen",
                        "problem": f"pay with {sent}",
                        "device": {"type": "phone"},
                    },
                },
                "problem",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/appointments",
                    "json": {
                        "customer_id": cid,
                        "starts_at": starts.isoformat(),
                        "ends_at": (starts + timedelta(hours=1)).isoformat(),
                        "notes": sent,
                    },
                },
                "notes",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/loyalty",
                    "json": {"points": 5, "reason": sent},
                },
                "reason",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/pets",
                    "json": {"name": "Rex", "species": "dog", "vet": {"name": sent}},
                },
                "vet.name",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/interactions",
                    "json": {"kind": "call", "direction": "inbound", "summary": sent},
                },
                "summary",
            ),
            (
                {"method": "POST", "url": f"/v1/customers/{cid}/messages", "json": {"text": sent}},
                "text",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/satisfaction",
                    "json": {"score": 5, "comment": sent},
                },
                "comment",
            ),
            (
                {"method": "POST", "url": f"/v1/customers/{cid}/cards", "json": self._card(sent)},
                "token",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/packages",
                    "json": {"name": sent, "sessions": 2},
                },
                "name",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/loyalty",
                    "json": {"points": int(digits), "reason": "x"},
                },
                "points",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/notes",
                    "data": f'{{"text": "{sent}",',
                    "headers": {"Content-Type": "application/json"},
                },
                "body",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/auth/login",
                    "json": {"login": sent, "password": "p"},
                },
                "login",
            ),
            ({"method": "GET", "url": "/v1/customers", "params": {"q": sent}}, "q"),
            ({"method": "GET", "url": f"/v1/customers/{digits}"}, "path"),
            (
                {"method": "GET", "url": "/v1/customers", "headers": {"X-Request-ID": digits}},
                "X-Request-ID",
            ),
            (
                {
                    "method": "POST",
                    "url": f"/v1/customers/{cid}/notes",
                    "json": {"text": "fine"},
                    "headers": {"Idempotency-Key": digits},
                },
                "Idempotency-Key",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/customers/imports",
                    "data": csv,
                    "headers": {"Content-Type": "text/csv"},
                },
                "rows[2].Notes",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/customers/imports",
                    "data": f"First Name;{sent}\nAda;x\n".encode(),
                    "headers": {"Content-Type": "text/csv"},
                },
                "header.<column 2>",
            ),
            (
                {
                    "method": "POST",
                    "url": "/v1/customers/imports",
                    "data": b"First Name\nAda\n",
                    "headers": {
                        "Content-Type": "text/csv",
                        "Content-Disposition": f'attachment; filename="{sent}.csv"',
                    },
                },
                "Content-Disposition",
            ),
        ]

    async def _ok(self, request: Any) -> Any:
        async with request as answer:
            assert answer.status == 201, await answer.text()
            return await answer.json()

    async def _refused(
        self, http: aiohttp.ClientSession, request: dict[str, Any], field: str
    ) -> None:
        async with http.request(**request) as answer:
            body = await answer.text()
            named = []
            if answer.content_type == "application/problem+json":
                named = [e["field"] for e in (await answer.json()).get("errors", [])]
            self.answers.append((f"{request['method']} {field}", answer.status, named))
            assert answer.status == 422 and field in named, (request, body)
            assert not any(n in body for n in NUMBERS), "the number is never echoed"


def searched(number: str) -> list[bytes]:
    """Each form of the number, and the digits in base64 and hex."""
    forms = [w.encode() for w in written(number)]
    return [*forms, base64.b64encode(number.encode()), number.encode().hex().encode()]


def database_hits(database_url: str, schema: str, wanted: list[bytes]) -> dict[str, list[bytes]]:
    """Every table of the stack's schemas, every column, as text and bytea (raw and hex)."""
    hits: dict[str, list[bytes]] = {}
    with psycopg.connect(database_url) as connection:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE' AND (table_schema = %s OR table_schema LIKE %s)",
            (schema, f"{schema}\\_%"),
        ).fetchall()
        assert len(tables) > 10, tables
        for table_schema, table in tables:
            cursor = connection.execute(
                sql.SQL("SELECT * FROM {}").format(sql.Identifier(table_schema, table))
            )
            names = [c.name for c in cursor.description or []]
            for row in cursor:
                for column, value in zip(names, row, strict=True):
                    blob = bytes(value) if isinstance(value, bytes | memoryview) else b""
                    blob += str(value).encode() + (blob.hex().encode() if blob else b"")
                    found = [w for w in wanted if w in blob]
                    if found:
                        hits.setdefault(f"{table_schema}.{table}.{column}", []).extend(found)
    return hits


def test_a_card_number_anywhere_is_refused_and_kept_nowhere(
    stack_settings: Settings, server_data_dir: Path, database_url: str
) -> None:
    """Each request 422 naming its field; no number in any table or any log line."""
    assert stack_settings.jwt_secret is not None
    token = issue_token(stack_settings.jwt_secret.get_secret_value(), "staff@shop", "admin")
    scenarios: list[Scenario] = []

    def refuse_them_all(base: str) -> None:
        scenarios.append(Scenario(base, token))
        asyncio.run(scenarios[0].run())

    logs = run_stack_logged(stack_settings, server_data_dir, refuse_them_all)
    (scenario,) = scenarios
    # Every kind of place, for every form of every number, was refused naming its field.
    assert len(scenario.answers) == len(NUMBERS) * 3 * 24
    output = b"".join(path.read_bytes() for path in logs.values())
    # The logs do cover the scenario: its requests, with the customer's id in their paths.
    assert b'"status":422' in output and scenario.customer_id.encode() in output
    wanted = [w for number in NUMBERS for w in searched(number)]
    assert [w for w in wanted if w in output] == []
    # The search finds what is stored (the read models hold the registered name) ...
    kept = database_hits(database_url, stack_settings.db_schema, [scenario.kept.encode()])
    assert any(hit.endswith(".customers.first_name") for hit in kept), kept
    # ... and no card number, in any form, anywhere.
    assert database_hits(database_url, stack_settings.db_schema, wanted) == {}
