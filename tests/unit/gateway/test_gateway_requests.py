"""Bodies, query strings and If-Match are validated with a precise 4xx for each mistake."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pytest
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.requests import (
    command_headers,
    etag,
    json_response,
    optional_if_match,
    parse_query,
    read_json,
    require_if_match,
)

PROBLEM = "application/problem+json"


class Note(BaseModel):
    """A request body model as the resource handlers write them."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    urgent: bool = False


class Search(BaseModel):
    """A query model with a list parameter."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    status: list[str] = []
    include_deleted: bool = False


async def echo_note(request: web.Request) -> web.Response:
    """Echo the validated note."""
    return json_response(await read_json(request, Note))


async def echo_optional(request: web.Request) -> web.Response:
    """Echo a note whose body may be left out."""
    return json_response(await read_json(request, Search, allow_empty=True))


async def echo_search(request: web.Request) -> web.Response:
    """Echo the validated query."""
    return json_response(parse_query(request, Search))


async def echo_version(request: web.Request) -> web.Response:
    """Echo the required If-Match version."""
    return json_response({"version": require_if_match(request)})


async def echo_optional_version(request: web.Request) -> web.Response:
    """Echo the optional If-Match version."""
    return json_response({"version": optional_if_match(request)})


ROUTES = [
    web.post("/note", echo_note),
    web.patch("/note", echo_note),
    web.post("/optional", echo_optional),
    web.get("/search", echo_search),
    web.post("/version", echo_version),
    web.post("/maybe-version", echo_optional_version),
]


@pytest.fixture
async def client(make_client: Any, bearer: Any) -> Any:
    """A gateway with the echo routes, and an admin token on every request."""
    test_client = await make_client(ROUTES)
    test_client.session.headers.update(bearer())
    return test_client


async def test_valid_body_is_parsed(client: Any) -> None:
    """A valid JSON object is validated into the model."""
    response = await client.post("/note", json={"text": "call back", "urgent": True})
    assert response.status == 200
    assert await response.json() == {"text": "call back", "urgent": True}


async def test_malformed_json_is_400_with_line_and_column(client: Any) -> None:
    """Malformed JSON answers 400 saying where it breaks."""
    response = await client.post(
        "/note", data=b'{\n  "text": "a",\n  oops}', headers={"Content-Type": "application/json"}
    )
    body = await response.json(content_type=PROBLEM)
    assert response.status == 400
    assert "line 3, column 3" in body["detail"]


async def test_empty_body_is_400(client: Any) -> None:
    """An empty body where an object is expected answers 400."""
    response = await client.post("/note", data=b"", headers={"Content-Type": "application/json"})
    assert response.status == 400


async def test_wrong_content_type_is_415(client: Any) -> None:
    """A body that is not application/json answers 415."""
    response = await client.post("/note", data=b"text=hi", headers={"Content-Type": "text/plain"})
    assert response.status == 415
    assert response.content_type == PROBLEM


async def test_merge_patch_is_accepted_for_patch_only(client: Any) -> None:
    """application/merge-patch+json is accepted on PATCH and refused with 415 on POST."""
    headers = {"Content-Type": "application/merge-patch+json"}
    patched = await client.patch("/note", data=b'{"text": "x"}', headers=headers)
    posted = await client.post("/note", data=b'{"text": "x"}', headers=headers)
    assert (patched.status, posted.status) == (200, 415)


async def test_non_object_body_is_422(client: Any) -> None:
    """A JSON array or scalar where an object is expected answers 422."""
    response = await client.post("/note", json=["text"])
    body = await response.json(content_type=PROBLEM)
    assert response.status == 422
    assert "an array" in body["detail"]


async def test_unknown_field_is_422_naming_it(client: Any) -> None:
    """An unknown field answers 422 naming the field and saying it is not allowed."""
    response = await client.post("/note", json={"text": "x", "colour": "red"})
    body = await response.json(content_type=PROBLEM)
    assert response.status == 422
    assert body["errors"] == [{"field": "colour", "message": "unknown field: not allowed"}]


async def test_invalid_field_is_422_without_echoing_the_input(client: Any) -> None:
    """A field failing validation is named, and the value sent is not echoed back."""
    response = await client.post("/note", json={"text": "a note", "urgent": "maybe"})
    text = await response.text()
    assert response.status == 422
    assert orjson.loads(text)["errors"][0]["field"] == "urgent"
    assert "maybe" not in text


async def test_body_over_the_limit_is_413(make_client: Any, bearer: Any) -> None:
    """A body larger than max_body_bytes answers 413."""
    client = await make_client(ROUTES, max_body_bytes=100)
    response = await client.post("/note", json={"text": "x" * 500}, headers=bearer())
    assert response.status == 413
    assert response.content_type == PROBLEM


async def test_allow_empty_validates_an_absent_body_as_empty(client: Any) -> None:
    """With allow_empty, a request without a body validates as `{}`."""
    response = await client.post("/optional")
    assert (await response.json())["limit"] == 50


async def test_query_is_validated(client: Any) -> None:
    """Query strings are converted by the model and list parameters may repeat."""
    response = await client.get("/search?limit=5&status=new&status=closed&include_deleted=true")
    assert await response.json() == {
        "limit": 5,
        "status": ["new", "closed"],
        "include_deleted": True,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
        ("limit=1&limit=2", "limit"),
    ],
)
async def test_bad_query_parameter_is_422_naming_it(client: Any, query: str, field: str) -> None:
    """A bad, unknown or repeated query parameter answers 422 naming it."""
    response = await client.get(f"/search?{query}")
    body = await response.json(content_type=PROBLEM)
    assert response.status == 422
    assert [e["field"] for e in body["errors"]] == [field]


async def test_missing_if_match_is_428(client: Any) -> None:
    """A required If-Match that is missing answers 428."""
    response = await client.post("/version")
    assert response.status == 428


@pytest.mark.parametrize(
    ("header", "status"),
    [('"7"', 200), ('W/"7"', 412), ('"abc"', 412), ("7", 400), ("*", 400), ('"1", "2"', 400)],
)
async def test_if_match_parsing(client: Any, header: str, status: int) -> None:
    """A strong numeric tag is the version; weak or foreign tags are 412; bad syntax is 400."""
    response = await client.post("/version", headers={"If-Match": header})
    assert response.status == status
    if status == 200:
        assert await response.json() == {"version": 7}


async def test_optional_if_match_may_be_absent(client: Any) -> None:
    """Without If-Match the optional reader gives None (apply to the latest version)."""
    response = await client.post("/maybe-version")
    assert await response.json() == {"version": None}


def test_json_response_writes_api_types_as_strings() -> None:
    """UUIDs, times and money are strings; a Decimal keeps its digits, never a float."""
    uid = UUID("12345678-1234-5678-1234-567812345678")
    response = json_response(
        {
            "id": uid,
            "at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            "amount": Decimal("12.50"),
            "big": Decimal("1E+2"),
        },
        status=201,
    )
    assert response.status == 201
    assert response.content_type == "application/json"
    assert orjson.loads(response.body) == {  # type: ignore[arg-type]
        "id": str(uid),
        "at": "2025-01-02T03:04:05+00:00",
        "amount": "12.50",
        "big": "100",
    }


def test_command_headers_and_etag() -> None:
    """A command's headers carry the quoted version, the event position and the location."""
    assert etag(4) == '"4"'
    assert command_headers(version=4, position=99, location="/v1/customers/x") == {
        "ETag": '"4"',
        "X-Event-Position": "99",
        "Location": "/v1/customers/x",
    }
