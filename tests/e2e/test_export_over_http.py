"""`GET /v1/customers/export` over HTTP, from the search read model kept by a follower.

Each test tags its customers with a group of its own, so the session's other customers
never change what a test exports.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from aiohttp.test_utils import TestClient
from typer.testing import CliRunner

from domain.service import CustomerService
from gateway import create_app
from gateway.export import COLUMNS, spreadsheet_safe
from infrastructure.settings import Settings
from projections.base import ReadModel
from workers.__main__ import app as cli
from workers.imports import ImportWorker

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
Registration = Callable[..., dict[str, Any]]
EVERYONE = {"registered_after": "1970-01-01"}


@pytest.fixture(scope="module", autouse=True)
def search_view(followed: Any) -> Iterator[ReadModel]:
    with followed("search") as model:
        yield model


async def _register(
    client: Client, bearer: Bearer, registration: Registration, count: int, **fields: Any
) -> tuple[list[dict[str, Any]], int]:
    """`count` customers with `fields`; and the position to wait for."""
    made, position = [], 0
    for _ in range(count):
        body = registration(**fields)
        response = await client.post("/v1/customers", json=body, headers=bearer())
        assert response.status == 201, await response.text()
        made.append({**body, **(await response.json())})
        position = int(response.headers["X-Event-Position"])
    return made, position


async def _export(client: Client, headers: dict[str, str], **params: Any) -> Any:
    query = {k: str(v) for k, v in params.items()}
    return await client.get("/v1/customers/export", params=query, headers=headers)


def _csv_rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


async def test_the_export_streams_every_matching_customer_as_csv(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """One row per customer of the search, newest first, with the search item's columns."""
    group = f"export-{secrets.token_hex(4)}"
    made, position = await _register(client, bearer, registration, 3, group=group)
    await _register(client, bearer, registration, 1, group="someone-else")
    response = await _export(client, bearer(), group=group, min_position=position, **EVERYONE)
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert response.headers["X-Total-Count"] == "3"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="customers-')
    text = await response.text()
    assert text.splitlines()[0].removeprefix("\ufeff") == ",".join(COLUMNS)
    rows = _csv_rows(text)
    assert [r["id"] for r in rows] == [m["id"] for m in reversed(made)]
    assert {r["group"] for r in rows} == {group}
    assert rows[0]["mobile_phone"].startswith("'+1")  # E.164 starts with +: escaped too
    assert rows[0]["deleted"] == "false"


async def test_ndjson_is_sent_when_asked_for(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """`Accept: application/x-ndjson` gives one JSON object per line, unescaped."""
    group = f"export-{secrets.token_hex(4)}"
    made, position = await _register(client, bearer, registration, 2, group=group)
    headers = {**bearer("service"), "Accept": "application/x-ndjson"}
    response = await _export(client, headers, group=group, min_position=position, **EVERYONE)
    assert response.content_type == "application/x-ndjson"
    lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
    assert [item["id"] for item in lines] == [m["id"] for m in reversed(made)]
    assert set(lines[0]) == set(COLUMNS)
    assert lines[0]["mobile_phone"].startswith("+1") and lines[0]["system_types"] == []


async def test_cells_a_spreadsheet_would_run_as_formulas_are_escaped(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """=, +, -, @, tab and CR at the start of a cell get a leading quote (OWASP)."""
    group = f"export-{secrets.token_hex(4)}"
    hostile = {
        "first_name": '=HYPERLINK("http://evil","x")',
        "last_name": "-2+3+cmd|' /C calc'!A0",
        "company_name": "@SUM(A1:A9)",
        "dba_name": "+1+1",
    }
    _, position = await _register(client, bearer, registration, 1, group=group, **hostile)
    response = await _export(client, bearer(), group=group, min_position=position, **EVERYONE)
    [row] = _csv_rows(await response.text())
    for name, value in hostile.items():
        assert row[name] == "'" + value
    assert spreadsheet_safe("\tx") == "'\tx" and spreadsheet_safe("\rx") == "'\rx"
    assert spreadsheet_safe("Ada") == "Ada"


async def test_the_export_takes_the_search_filters_and_their_default_window(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """q finds as search finds; without a window the last 30 days count, as in the list."""
    group = f"export-{secrets.token_hex(4)}"
    made, position = await _register(client, bearer, registration, 2, group=group)
    found = await _export(client, bearer(), q=made[0]["email"], group=group, min_position=position)
    assert [r["id"] for r in _csv_rows(await found.text())] == [made[0]["id"]]
    recent = await _export(client, bearer(), group=group)
    assert len(_csv_rows(await recent.text())) == 2
    future = await _export(client, bearer(), group=group, registered_after="2999-01-01")
    assert _csv_rows(await future.text()) == [] and future.headers["X-Total-Count"] == "0"


async def test_bad_parameters_and_callers_are_refused_as_search_refuses_them(
    client: Client, bearer: Bearer
) -> None:
    """422 names the parameter; no token is 401; a customer token is 404, as for search."""
    bad = await _export(client, bearer(), registered_within_days="0", limit="5")
    assert bad.status == 422
    assert {e["field"] for e in (await bad.json())["errors"]} == {
        "registered_within_days",
        "limit",
    }
    assert (await client.get("/v1/customers/export")).status == 401
    customer = bearer("customer", customer_id="7b0e7d4e-2b0a-4a39-9d55-0d7a3f0b1e11")
    assert (await _export(client, customer)).status == 404


async def test_an_exported_file_imports_back_as_duplicates_of_its_customers(
    client: Client,
    bearer: Bearer,
    registration: Registration,
    service: CustomerService,
    api_settings: Settings,
) -> None:
    """The export's headers are the import's: re-importing finds every customer again."""
    group = f"export-{secrets.token_hex(4)}"
    made, position = await _register(client, bearer, registration, 2, group=group)
    exported = await _export(client, bearer(), group=group, min_position=position, **EVERYONE)
    response = await client.post(
        "/v1/customers/imports",
        data=await exported.read(),
        headers={**bearer(), "Content-Type": "text/csv"},
    )
    assert response.status == 202, await response.text()
    import_id = UUID((await response.json())["import_id"])
    worker = ImportWorker(service, api_settings.database_url or "", schema=api_settings.db_schema)
    await asyncio.to_thread(worker.process, import_id)
    report = await (await client.get(f"/v1/customers/imports/{import_id}", headers=bearer())).json()
    assert report["counts"] == {"created": 0, "duplicate": 2, "invalid": 0, "pending": 0}
    assert {r["customer_id"] for r in report["rows"]} == {m["id"] for m in made}
    # The customer number is the first unique value the write path checks.
    assert {r["errors"][0]["field"] for r in report["rows"]} == {"customer_number"}


async def test_the_cli_downloads_the_export_to_a_file(
    aiohttp_server: Any,
    api_settings: Settings,
    service: CustomerService,
    client: Client,
    bearer: Bearer,
    registration: Registration,
) -> None:
    """`customers export --group G --all -o FILE` writes what the endpoint streams."""
    group = f"export-{secrets.token_hex(4)}"
    made, position = await _register(client, bearer, registration, 2, group=group)
    await _export(client, bearer(), group=group, min_position=position, **EVERYONE)  # caught up
    server = await aiohttp_server(create_app(api_settings, service=service))
    folder = Path(tempfile.mkdtemp(prefix="export-cli-"))
    target = folder / "out.ndjson"
    token = bearer()["Authorization"].removeprefix("Bearer ")
    args = ["export", "--group", group, "--all", "--ndjson", "-o", str(target)]
    args += ["--url", str(server.make_url("/")), "--token", token]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 0, result.output
    assert "2 customers written" in result.output
    lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert {item["id"] for item in lines} == {m["id"] for m in made}
    shutil.rmtree(folder)
