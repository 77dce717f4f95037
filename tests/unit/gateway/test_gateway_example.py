"""A resource handler written with the framework's pieces behaves as API.md says.

This is the pattern the customer handlers follow: validate, check who may see it, call
the synchronous service in the pool with the actor bound, answer with ETag,
X-Event-Position and Location.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from domain.context import current_actor, current_correlation_id
from domain.errors import NotFoundError, VersionMismatchError
from gateway import (
    SERVICE_KEY,
    can_see_customer,
    command_headers,
    json_response,
    operation,
    optional_if_match,
    path_uuid,
    principal,
    read_json,
    run_sync,
)
from gateway.app import create_app


class NoteIn(BaseModel):
    """A note to add."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=10_000)
    urgent: bool = False


class NoteAdded(BaseModel):
    """What the command answers."""

    id: UUID
    version: int


@dataclass
class Receipt:
    """What the fake service returns for a command."""

    note_id: UUID
    version: int
    position: int


@dataclass
class FakeService:
    """Records each call with the actor and correlation id it saw (in the worker thread)."""

    version: int = 3
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def add_note(self, customer_id: UUID, text: str, *, expected_version: int | None) -> Receipt:
        """Add a note, refusing a stale expected version."""
        self.calls.append((text, current_actor(), current_correlation_id()))
        if expected_version is not None and expected_version != self.version:
            raise VersionMismatchError(expected_version, self.version)
        self.version += 1
        return Receipt(uuid4(), self.version, 1000 + self.version)


@operation(
    "Add a note to a customer",
    tag="customers",
    request=NoteIn,
    responses={201: NoteAdded},
    if_match="optional",
    response_headers=("ETag", "X-Event-Position", "Location"),
)
async def add_note(request: web.Request) -> web.Response:
    """POST /v1/customers/{id}/notes."""
    customer_id = path_uuid(request)
    if not can_see_customer(principal(request), customer_id):
        raise NotFoundError("customer", customer_id)
    note = await read_json(request, NoteIn)
    service: FakeService = request.app[SERVICE_KEY]
    receipt = await run_sync(
        request,
        service.add_note,
        customer_id,
        note.text,
        expected_version=optional_if_match(request),
    )
    location = f"/v1/customers/{customer_id}/notes/{receipt.note_id}"
    return json_response(
        NoteAdded(id=receipt.note_id, version=receipt.version),
        status=201,
        headers=command_headers(
            version=receipt.version, position=receipt.position, location=location
        ),
    )


@pytest.fixture
async def setup(aiohttp_client: Any, make_settings: Any, jwt_secret: str) -> Any:
    """A gateway with the example route and a fake service."""
    service = FakeService()
    app = create_app(
        make_settings(jwt_secret=jwt_secret),
        service=service,
        extra_routes=[web.post("/v1/customers/{id}/notes", add_note)],
    )
    return await aiohttp_client(app), service


async def test_command_answers_with_etag_position_and_location(setup: Any, bearer: Any) -> None:
    """A command answers 201 with ETag, X-Event-Position and Location, its actor on the call."""
    client, service = setup
    cid = uuid4()
    response = await client.post(
        f"/v1/customers/{cid}/notes",
        json={"text": "gate code 1234"},
        headers={**bearer("staff", "bob"), "If-Match": '"3"', "X-Request-ID": "req-7"},
    )
    body = await response.json()
    assert response.status == 201
    assert response.headers["ETag"] == '"4"'
    assert response.headers["X-Event-Position"] == "1004"
    assert response.headers["Location"] == f"/v1/customers/{cid}/notes/{body['id']}"
    assert service.calls == [("gate code 1234", "bob", "req-7")]


async def test_stale_version_is_412(setup: Any, bearer: Any) -> None:
    """A stale If-Match reaches the service and comes back as 412."""
    client, _ = setup
    response = await client.post(
        f"/v1/customers/{uuid4()}/notes",
        json={"text": "x"},
        headers={**bearer(), "If-Match": '"1"'},
    )
    assert response.status == 412
    assert (await response.json(content_type="application/problem+json"))["current_version"] == 3


async def test_customer_token_gets_404_for_another_customer(setup: Any, bearer: Any) -> None:
    """A customer token answers 404 for another customer's resource and 201 for its own."""
    client, service = setup
    own, other = uuid4(), uuid4()
    headers = bearer("customer", "c1", own)
    theirs = await client.post(f"/v1/customers/{other}/notes", json={"text": "x"}, headers=headers)
    mine = await client.post(f"/v1/customers/{own}/notes", json={"text": "x"}, headers=headers)
    assert (theirs.status, mine.status) == (404, 201)
    assert len(service.calls) == 1


async def test_id_that_is_not_a_uuid_is_404(setup: Any, bearer: Any) -> None:
    """A path id that is not a UUID answers 404, as for any unknown id."""
    client, _ = setup
    response = await client.post("/v1/customers/42/notes", json={"text": "x"}, headers=bearer())
    assert response.status == 404
