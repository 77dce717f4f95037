"""The gateway refuses a full card number wherever a request carries it, before the handler
runs, naming the place and never echoing the number; the access log redacts the path."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest
import structlog
from aiohttp import web

from domain.cards import BRANDS
from gateway.account_schemas import Brand
from gateway.keys import PARSED_JSON_KEY
from gateway.operations import Body, operation
from gateway.requests import parse_json

PROBLEM = "application/problem+json"
CARD = "4111 1111 1111 1111"
ECHOED = re.compile(r"4111[ -]?1111")
"""The test numbers' head in any form sent (not just "4111": a random request id has it)."""


class Reached:
    """Counts the requests that got to the handler."""

    def __init__(self) -> None:
        self.count = 0

    async def handler(self, request: web.Request) -> web.Response:
        self.count += 1
        await request.read()
        return web.json_response({"ok": True})


@pytest.fixture
async def reached() -> Reached:
    return Reached()


@operation("Take a file", tag="t", request=Body(media_type="application/octet-stream"))
async def streamed(request: web.Request) -> web.Response:
    size = 0
    async for chunk in request.content.iter_chunked(1024):
        size += len(chunk)
    return web.json_response({"size": size})


@pytest.fixture
async def client(make_client: Any, bearer: Any, reached: Reached) -> Any:
    routes = [
        web.post("/echo", reached.handler),
        web.get("/echo/{rest}", reached.handler),
        web.post("/upload", streamed),
    ]
    test_client = await make_client(routes)
    test_client.session.headers.update(bearer())
    return test_client


async def refused(response: Any) -> list[str | None]:
    text = await response.text()
    assert response.status == 422 and response.content_type == PROBLEM, text
    assert not ECHOED.search(text), "the number is never echoed, not even in `instance`"
    return [e["field"] for e in (await response.json())["errors"]]


async def test_a_body_field_is_named_and_the_handler_never_runs(
    client: Any, reached: Reached
) -> None:
    body = {"name": "ok", "notes": [{"text": "fine"}, {"text": f"charge {CARD}."}]}
    assert await refused(await client.post("/echo", json=body)) == ["notes[1].text"]
    assert reached.count == 0


async def test_a_key_a_number_and_a_malformed_body_are_refused(client: Any) -> None:
    assert await refused(await client.post("/echo", json={"cf": {CARD: "x"}})) == ["cf.<key 0>"]
    assert await refused(await client.post("/echo", json={"n": 4111111111111111})) == ["n"]
    malformed = await client.post(
        "/echo", data=f'{{"a": "{CARD}",'.encode(), headers={"Content-Type": "application/json"}
    )
    assert await refused(malformed) == ["body"]
    patch = await client.post(
        "/echo",
        data=f'{{"a": "{CARD}"}}'.encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert await refused(patch) == ["a"]


async def test_query_path_and_logged_headers_are_refused(client: Any) -> None:
    assert await refused(await client.get("/echo/x", params={"q": CARD})) == ["q"]
    assert await refused(await client.get("/echo/x", params={CARD: "1"})) == ["<query parameter 0>"]
    assert await refused(await client.get("/echo/4111111111111111")) == ["path"]
    for header in ("X-Request-ID", "Idempotency-Key", "Content-Disposition"):
        response = await client.get("/echo/x", headers={header: "4111111111111111"})
        assert await refused(response) == [header]


async def test_the_request_id_and_path_are_not_logged_as_sent(client: Any) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await client.get(
            "/echo/4111-1111-1111-1111", headers={"X-Request-ID": "4111111111111111"}
        )
    assert response.status == 422
    assert response.headers["X-Request-ID"] != "4111111111111111"
    access = [line for line in logs if line.get("event") == "request"]
    assert access and access[0]["path"] == "/echo/<card number>"
    assert not ECHOED.search(str(logs))


async def test_ordinary_requests_pass(client: Any, reached: Reached) -> None:
    """Phone numbers, IMEIs, long order numbers and text bodies are not card numbers."""
    body = {"phone": "+4915112345678", "order": "4111111111111112", "imei": "356938035643809"}
    assert (await client.post("/echo", json=body)).status == 200
    text = await client.post("/echo", data=CARD.encode(), headers={"Content-Type": "text/plain"})
    assert text.status == 200, "not JSON: its handler judges it (415 for a JSON endpoint)"
    assert reached.count == 2


async def test_an_anonymous_caller_gets_401_before_the_body_is_read(client: Any) -> None:
    response = await client.post(
        "/echo", json={"a": CARD}, headers={"Authorization": "Bearer nope"}
    )
    assert response.status == 401


def test_the_documented_brands_are_the_domains() -> None:
    assert set(get_args(Brand)) == set(BRANDS)


async def test_an_operation_that_streams_its_body_gets_it_whole(client: Any) -> None:
    """A file upload sent as JSON is its handler's to read (and judge), past the JSON limit."""
    body = b'{"backup": "' + b"x" * 5000 + b'"}'
    response = await client.post("/upload", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 200
    assert (await response.json())["size"] == len(body)


async def test_the_body_is_parsed_once_for_the_refusal_and_the_handler(
    make_client: Any, bearer: Any
) -> None:
    """The handler's `parse_json` gets the parse the refusal made (one parse per request)."""
    seen: list[Any] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request[PARSED_JSON_KEY])
        seen.append(await parse_json(request))
        return web.json_response({"ok": True})

    client = await make_client([web.post("/parsed", handler)])
    response = await client.post("/parsed", json={"a": [1, "b"]}, headers=bearer())
    assert response.status == 200
    assert seen[0] is seen[1] and seen[0].value == {"a": [1, "b"]}
