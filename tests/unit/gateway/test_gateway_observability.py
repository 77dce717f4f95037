"""Request ids are accepted or generated and echoed; requests are logged and counted by route."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gateway.requests import json_response


async def stream(request: web.Request) -> web.StreamResponse:
    """A streamed answer whose headers go out before the handler returns."""
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"row\n")
    return response


async def item(request: web.Request) -> web.Response:
    """An answer on a templated route."""
    return json_response({"id": request.match_info["item_id"]})


ROUTES = [web.get("/stream", stream), web.get("/items/{item_id}", item)]


async def test_sane_request_id_is_echoed(make_client: Any) -> None:
    """A sane X-Request-ID from the client is echoed unchanged."""
    client = await make_client()
    response = await client.get("/healthz", headers={"X-Request-ID": "abc.DEF-123_x"})
    assert response.headers["X-Request-ID"] == "abc.DEF-123_x"
    assert response.headers["Server"] == "customers"


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 129, "semi;colon"])
async def test_missing_or_insane_request_id_is_replaced(make_client: Any, sent: str | None) -> None:
    """Without a sane X-Request-ID the gateway generates a 32-hex-digit one."""
    client = await make_client()
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response = await client.get("/healthz", headers=headers)
    rid = response.headers["X-Request-ID"]
    assert rid != sent
    assert len(rid) == 32 and int(rid, 16) >= 0


async def test_request_id_is_on_errors_and_streams(make_client: Any, bearer: Any) -> None:
    """Error responses and streamed responses carry the request id too."""
    client = await make_client(ROUTES)
    missing = await client.get("/nowhere", headers={"X-Request-ID": "r1"})
    unauthorised = await client.get("/stream", headers={"X-Request-ID": "r2"})
    streamed = await client.get("/stream", headers={**bearer(), "X-Request-ID": "r3"})
    assert [r.headers["X-Request-ID"] for r in (missing, unauthorised, streamed)] == [
        "r1",
        "r2",
        "r3",
    ]
    assert await streamed.read() == b"row\n"


async def test_one_access_line_per_request(make_client: Any, bearer: Any) -> None:
    """Each request logs one line with method, path, route, status, duration and actor."""
    client = await make_client(ROUTES)
    with capture_logs() as logs:
        await client.get("/items/42", headers={**bearer("staff", "bob"), "X-Request-ID": "r9"})
    lines = [line for line in logs if line["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["method"], line["path"], line["route"], line["status"], line["actor"]) == (
        "GET",
        "/items/42",
        "/items/{item_id}",
        200,
        "bob",
    )
    assert line["duration_ms"] >= 0


async def test_metrics_count_by_route_template(make_client: Any, bearer: Any) -> None:
    """/metrics exposes request counts labelled by the route template, not the raw path."""
    client = await make_client(ROUTES)
    for item_id in ("1", "2", "3"):
        await client.get(f"/items/{item_id}", headers=bearer())
    await client.get("/nowhere")
    response = await client.get("/metrics")
    text = await response.text()
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 3.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "http_request_duration_seconds_bucket" in text
    assert "/items/1" not in text


async def test_each_app_has_its_own_registry(make_client: Any) -> None:
    """Two apps in one process count their requests separately."""
    first, second = await make_client(), await make_client()
    await first.get("/healthz")
    text = await (await second.get("/metrics")).text()
    assert 'route="/healthz"' not in text
