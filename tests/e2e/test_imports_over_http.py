"""Importing customer files over HTTP, with an import worker registering the rows.

Every test's file holds fresh random emails, so each file has its own hash (its own
import) and never meets another test's customers.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from typer.testing import CliRunner

from domain.service import CustomerService
from gateway import create_app
from infrastructure.imports import ImportStore, import_id_of
from infrastructure.settings import Settings
from workers.__main__ import app as cli
from workers.imports import ImportWorker

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module", autouse=True)
def import_worker(api_settings: Settings, service: CustomerService) -> Iterator[ImportWorker]:
    """An import worker thread on the e2e schema, as `customers worker import` runs one."""
    worker = ImportWorker(
        service, api_settings.database_url or "", schema=api_settings.db_schema, save_rows=4
    )
    thread = threading.Thread(target=worker.run, name="import-worker", daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(10)


def _email() -> str:
    return f"{secrets.token_hex(6)}@example.com"


def _mobile() -> str:
    return f"(415) {200 + secrets.randbelow(700)}-{1000 + secrets.randbelow(9000)}"


async def _upload(
    client: Client, headers: dict[str, str], content: str | bytes, **params: str
) -> Any:
    body = content.encode() if isinstance(content, str) else content
    return await client.post(
        "/v1/customers/imports", data=body, params=params, headers={**headers, **CSV}
    )


async def _finished(client: Client, headers: dict[str, str], import_id: str) -> dict[str, Any]:
    """The report once the worker has processed every row."""
    for _ in range(200):
        response = await client.get(f"/v1/customers/imports/{import_id}", headers=headers)
        assert response.status == 200, await response.text()
        report: dict[str, Any] = await response.json()
        if report["status"] != "running":
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"import {import_id} still running")


async def _imported(client: Client, headers: dict[str, str], content: str, **params: str) -> Any:
    response = await _upload(client, headers, content, **params)
    assert response.status == 202, await response.text()
    accepted = await response.json()
    assert response.headers["Location"] == f"/v1/customers/imports/{accepted['import_id']}"
    return await _finished(client, headers, accepted["import_id"])


async def test_an_upload_is_accepted_and_the_report_gives_each_rows_outcome(
    client: Client, bearer: Bearer
) -> None:
    """Valid rows are registered; rows the API or the domain refuse are reported by field."""
    email = _email()
    content = (
        "First Name,Last Name,E-mail,Mobile,Customer ID,Street,City,Tier\n"
        f"Ada,Lovelace,{email},{_mobile()},,12 St James Sq,London,gold\n"
        f"Bob,B,not-an-email,,,,,\n"  # the domain refuses the address
        f"Carl,C,{_email()},,abc,,,\n"  # the API's model refuses the number
        f"Dan,D,{_email()},999,,,,\n"  # not a phone number: refused by the domain
    )
    report = await _imported(client, bearer("staff"), content)
    assert report["status"] == "done"
    assert report["counts"] == {"created": 1, "duplicate": 0, "invalid": 3, "pending": 0}
    rows = {r["row"]: r for r in report["rows"]}
    assert rows[2]["status"] == "created" and "errors" not in rows[2]
    assert [e["field"] for e in rows[3]["errors"]] == ["email"]
    assert [e["field"] for e in rows[4]["errors"]] == ["customer_number"]
    assert [e["field"] for e in rows[5]["errors"]] == ["mobile_phone"]
    assert {"header": "Tier", "read_as": "custom_fields"} in report["columns"]
    customer = await (
        await client.get(f"/v1/customers/{rows[2]['customer_id']}", headers=bearer("staff"))
    ).json()
    assert customer["email"] == email and customer["custom_fields"] == {"Tier": "gold"}
    assert customer["addresses"][0]["city"] == "London"
    # Customers moved from an old system did not sign up: no welcome unless asked for.
    assert customer["send_registration_email"] is False
    assert customer["source"] == "import"


async def test_send_registration_email_is_a_query_parameter(client: Client, bearer: Bearer) -> None:
    """`?send_registration_email=true` asks for the registration message for every row."""
    report = await _imported(
        client, bearer(), f"first_name,email\nAda,{_email()}\n", send_registration_email="true"
    )
    [row] = report["rows"]
    customer = await (
        await client.get(f"/v1/customers/{row['customer_id']}", headers=bearer())
    ).json()
    assert customer["send_registration_email"] is True


async def test_rows_matching_existing_customers_are_duplicates_and_not_created(
    client: Client, bearer: Bearer, registration: Callable[..., dict[str, Any]]
) -> None:
    """Email, mobile phone and customer number each find the customer that holds them."""
    headers = bearer()
    existing = []
    for _ in range(3):
        body = registration()
        response = await client.post("/v1/customers", json=body, headers=headers)
        existing.append({**body, **(await response.json())})
    by_email, by_mobile = existing[0], existing[1]
    number = existing[2]["customer_number"]
    twin = _email()
    content = (
        "first_name,email,mobile phone,customer number\n"
        f"Eve,{by_email['email'].upper()},,\n"  # emails compare case-insensitively
        f"Mal,,{by_mobile['mobile_phone'].replace(' ', '')},\n"  # the same number, typed otherwise
        f"Num,,,{number}\n"
        f"Twin,{twin},,\n"
        f"Twin again,{twin},,\n"  # the second row with the same email meets the first
    )
    report = await _imported(client, headers, content)
    rows = {r["row"]: r for r in report["rows"]}
    assert report["counts"] == {"created": 1, "duplicate": 4, "invalid": 0, "pending": 0}
    assert rows[2]["customer_id"] == existing[0]["id"]
    assert rows[2]["errors"][0]["field"] == "email"
    assert (rows[3]["customer_id"], rows[3]["errors"][0]["field"]) == (
        existing[1]["id"],
        "mobile_phone",
    )
    assert (rows[4]["customer_id"], rows[4]["errors"][0]["field"]) == (
        existing[2]["id"],
        "customer_number",
    )
    assert rows[5]["status"] == "created"
    assert rows[6] == {
        "row": 6,
        "status": "duplicate",
        "customer_id": rows[5]["customer_id"],
        "errors": [{"field": "email", "message": "email is already used by another customer"}],
    }


async def test_the_same_file_twice_is_the_same_import_and_creates_nothing(
    client: Client, bearer: Bearer, service: CustomerService
) -> None:
    """The file's hash names the import: the second upload answers with the first."""
    content = f"first_name,email\nAda,{_email()}\nBob,{_email()}\n"
    first = await _imported(client, bearer(), content)
    head = service.recorder.max_notification_id()
    again = await _upload(client, bearer("admin", sub="someone-else"), content)
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["import_id"] == first["import_id"]
    second = await _finished(client, bearer(), first["import_id"])
    assert second["rows"] == first["rows"] and second["counts"]["created"] == 2
    await asyncio.sleep(0.3)  # the worker had its chance to do something
    assert service.recorder.max_notification_id() == head


async def test_the_report_pages_its_rows_and_filters_them_by_outcome(
    client: Client, bearer: Bearer
) -> None:
    """`limit` and `next_cursor` page the rows; `status` picks one outcome."""
    lines = [f"Row{i},{_email() if i % 2 else 'bad'}" for i in range(5)]
    report = await _imported(client, bearer(), "first_name,email\n" + "\n".join(lines) + "\n")
    path = f"/v1/customers/imports/{report['import_id']}"
    first = await (await client.get(path, params={"limit": "2"}, headers=bearer())).json()
    assert [r["row"] for r in first["rows"]] == [2, 3]
    rest = await (
        await client.get(
            path, params={"limit": "10", "cursor": first["next_cursor"]}, headers=bearer()
        )
    ).json()
    assert [r["row"] for r in rest["rows"]] == [4, 5, 6] and rest["next_cursor"] is None
    invalid = await (await client.get(path, params={"status": "invalid"}, headers=bearer())).json()
    assert [r["row"] for r in invalid["rows"]] == [2, 4, 6]
    progress = await (await client.get(path, params={"limit": "0"}, headers=bearer())).json()
    assert progress["rows"] == [] and progress["counts"]["invalid"] == 3


@pytest.mark.parametrize(
    ("content", "field", "detail"),
    [
        (b"", "file", "the file is empty"),
        (b"first_name\n", "file", "the file has a header but no rows"),
        (b"Ada,ada@example.com\n", "file", "no header row"),
        (b"surname\nLovelace\n", "first_name", "no column for first_name"),
        (b"first_name|email\nAda|x\n", "file", "unknown delimiter"),
        (b"first_name\nAda\x00\n", "file", "binary data"),
        (b'first_name,email\n"Ada"x,y\n', "file", "malformed CSV near line 2"),
    ],
)
async def test_a_file_that_cannot_be_read_is_refused_with_422_naming_why(
    client: Client, bearer: Bearer, content: bytes, field: str, detail: str
) -> None:
    """Malformed files are refused whole, with a problem naming the file or the column."""
    response = await _upload(client, bearer(), content)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["errors"][0]["field"] == field
    assert detail in problem["errors"][0]["message"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_a_body_that_is_not_declared_csv_answers_415(
    client: Client, bearer: Bearer, content_type: str | None
) -> None:
    headers = {**bearer(), **({"Content-Type": content_type} if content_type else {})}
    response = await client.post(
        "/v1/customers/imports", data=b"first_name\nAda\n", headers=headers
    )
    assert response.status == 415
    assert (await response.json())["status"] == 415
    assert "text/csv" in response.headers["Accept-Post"]


async def test_a_file_over_the_import_limit_answers_413_however_it_is_sent(
    aiohttp_client: Any, api_settings: Settings, service: CustomerService, bearer: Bearer
) -> None:
    """Declared too large (Content-Length), or found too large while streaming (chunked)."""
    settings = api_settings.model_copy(update={"max_import_bytes": 1000})
    client = await aiohttp_client(create_app(settings, service=service))
    big = b"first_name\n" + b"Ada\n" * 500
    declared = await _upload(client, bearer(), big)
    assert declared.status == 413

    async def chunks() -> Any:
        for _ in range(50):
            yield b"Ada\n" * 10

    streamed = await client.post(
        "/v1/customers/imports", data=chunks(), headers={**bearer(), **CSV}
    )
    assert streamed.status == 413
    assert (await streamed.json())["type"].endswith("/body-too-large")
    # The gateway's 1 MB body limit does not apply to imports: it has its own.
    assert settings.max_body_bytes < api_settings.max_import_bytes


async def test_imports_need_a_staff_token_and_unknown_ids_answer_404(
    client: Client, bearer: Bearer
) -> None:
    """No token: 401; a customer token: 404, as for anything not theirs; unknown id: 404."""
    assert (await client.post("/v1/customers/imports", data=b"x", headers=CSV)).status == 401
    customer = bearer("customer", customer_id="7b0e7d4e-2b0a-4a39-9d55-0d7a3f0b1e11")
    assert (await _upload(client, customer, b"first_name\nAda\n")).status == 404
    unknown = "/v1/customers/imports/0b6d2f8e-7a43-4c2e-9d4b-3c7e1f2a9b10"
    assert (await client.get(unknown, headers=bearer())).status == 404
    assert (await client.get(unknown, headers=customer)).status == 404
    bad = await client.get(unknown, params={"limit": "-1"}, headers=bearer())
    assert bad.status == 422 and (await bad.json())["errors"][0]["field"] == "limit"


async def test_the_cli_uploads_a_file_follows_the_import_and_prints_the_report(
    aiohttp_server: Any, api_settings: Settings, service: CustomerService, bearer: Bearer
) -> None:
    """`customers import FILE.csv` streams the file up and reports the outcome per row."""
    server = await aiohttp_server(create_app(api_settings, service=service))
    folder = Path(tempfile.mkdtemp(prefix="import-cli-"))
    file = folder / "old-system.csv"
    file.write_text(f"First Name;E-mail\nAda;{_email()}\nBob;not-an-email\n", encoding="cp1252")
    token = bearer()["Authorization"].removeprefix("Bearer ")
    args = ["import", str(file), "--url", str(server.make_url("/")), "--token", token]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 0, result.output
    assert "1 created, 0 duplicate, 1 invalid" in result.output
    assert "row 3: email: not a valid email address" in result.output
    again = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert "This file was imported before" in again.output
    shutil.rmtree(folder)


async def test_the_openapi_document_describes_import_and_export(client: Client) -> None:
    """The served document has the three operations, their media types and refusals."""
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    upload = paths["/v1/customers/imports"]["post"]
    assert list(upload["requestBody"]["content"]) == ["text/csv"]
    assert {"202", "413", "415", "422"} <= set(upload["responses"])
    assert [p["name"] for p in upload["parameters"] if p.get("in") == "query"] == [
        "send_registration_email"
    ]
    report = paths["/v1/customers/imports/{import_id}"]["get"]
    assert report["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ImportReport"
    )
    export = paths["/v1/customers/export"]["get"]
    assert list(export["responses"]["200"]["content"]) == ["text/csv", "application/x-ndjson"]
    assert {p["name"] for p in export["parameters"] if p.get("in") == "query"} >= {
        "q",
        "group",
        "registered_after",
        "min_position",
    }


async def test_a_failed_import_uploaded_again_goes_on_where_it_stopped(
    client: Client, bearer: Bearer, service: CustomerService, api_settings: Settings
) -> None:
    """An import that failed (errors that are neither refusals nor outages) restarts."""
    store = ImportStore(service.recorder.datastore, api_settings.db_schema)  # type: ignore[attr-defined]
    content = f"first_name,email\nAda,{_email()}\n"
    import_id = import_id_of(hashlib.sha256(content.encode()).hexdigest())
    # Hold the import's lock as a worker would, so the running worker cannot take it.
    key = f"import:{api_settings.db_schema}:{import_id}"
    with psycopg.connect(api_settings.database_url or "", autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        response = await _upload(client, bearer(), content)
        assert (await response.json())["import_id"] == str(import_id)
        assert store.fail(import_id, "RuntimeError('boom')", give_up_after=1)
    path = f"/v1/customers/imports/{import_id}"
    failed = await (await client.get(path, headers=bearer())).json()
    assert (failed["status"], failed["error"]) == ("failed", "RuntimeError('boom')")
    assert failed["counts"]["pending"] == 1
    await asyncio.sleep(0.3)
    assert (await (await client.get(path, headers=bearer())).json())["status"] == "failed"
    again = await _upload(client, bearer(), content)
    assert again.status == 202
    report = await _finished(client, bearer(), str(import_id))
    assert (report["status"], report["counts"]["created"], report["error"]) == ("done", 1, None)
