"""Every failure becomes an RFC 9457 problem with the right status and nothing internal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import psycopg
import psycopg_pool
import pytest
from aiohttp import ClientPayloadError, web
from eventsourcing import persistence
from pydantic import BaseModel, ValidationError

from domain import errors
from gateway.problems import PROBLEM_TYPE_BASE, Problem, problem_from_exception

PROBLEM = "application/problem+json"


def raising(exc: BaseException) -> Callable[[web.Request], Any]:
    """A handler that raises `exc`."""

    async def handler(request: web.Request) -> web.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (errors.NotFoundError("customer", uuid4()), 404, "not-found"),
        (errors.UniqueValueTakenError("email"), 409, "unique-value-taken"),
        (errors.ImmutableFieldError("username"), 409, "immutable-field"),
        (errors.ConflictError("busy"), 409, "conflict"),
        (errors.VersionMismatchError(3, 4), 412, "version-mismatch"),
        (errors.RuleViolationError("assigned_staff_ids", "at most two"), 422, "rule-violation"),
        (errors.DomainError("some new refusal"), 422, "rule-violation"),
    ],
)
async def test_domain_errors_map_to_their_status(
    make_client: Any, bearer: Any, exc: Exception, status: int, slug: str
) -> None:
    """Each branch of the domain's error tree answers its own status and problem type."""
    client = await make_client([web.get("/boom", raising(exc))])
    response = await client.get("/boom", headers=bearer())
    body = await response.json(content_type=PROBLEM)
    assert response.status == status
    assert response.content_type == PROBLEM
    assert body["type"] == PROBLEM_TYPE_BASE + slug
    assert body["status"] == status
    assert body["instance"] == "/boom"
    assert body["request_id"] == response.headers["X-Request-ID"]


async def test_conflict_names_the_field(make_client: Any, bearer: Any) -> None:
    """A unique value taken answers 409 with the field in `errors`."""
    client = await make_client([web.get("/boom", raising(errors.UniqueValueTakenError("email")))])
    body = await (await client.get("/boom", headers=bearer())).json(content_type=PROBLEM)
    assert body["errors"] == [
        {"field": "email", "message": "email is already used by another customer"}
    ]


async def test_invalid_transition_lists_the_allowed_states(make_client: Any, bearer: Any) -> None:
    """An invalid transition answers 409 naming the allowed target states."""
    exc = errors.InvalidTransitionError("new", "closed", ["diagnosing", "cancelled"])
    client = await make_client([web.get("/boom", raising(exc))])
    response = await client.get("/boom", headers=bearer())
    body = await response.json(content_type=PROBLEM)
    assert response.status == 409
    assert body["allowed"] == ["diagnosing", "cancelled"]
    assert body["errors"][0]["field"] == "status"


async def test_rule_violation_names_the_field(make_client: Any, bearer: Any) -> None:
    """A rule violation answers 422 naming the field that breaks it."""
    exc = errors.RuleViolationError("discount_percent", "must be at most 100")
    client = await make_client([web.get("/boom", raising(exc))])
    body = await (await client.get("/boom", headers=bearer())).json(content_type=PROBLEM)
    assert body["errors"] == [{"field": "discount_percent", "message": "must be at most 100"}]


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection refused"),
        psycopg_pool.PoolTimeout("no connection"),
        psycopg.errors.DiskFull("could not extend file: No space left on device"),
        persistence.OperationalError("server closed the connection"),
        persistence.InterfaceError("connection already closed"),
    ],
)
async def test_unreachable_database_answers_503(
    make_client: Any, bearer: Any, exc: Exception
) -> None:
    """A database that cannot be reached answers 503 with Retry-After, not 500."""
    client = await make_client([web.get("/boom", raising(exc))])
    response = await client.get("/boom", headers=bearer())
    body = await response.json(content_type=PROBLEM)
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert "connection" not in body["detail"]


def _wrapped_read_only_error() -> Exception:
    """What the event store raises on a read-only database: its InternalError from psycopg's."""
    try:
        try:
            raise psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT")
        except psycopg.Error as error:
            raise persistence.InternalError(str(error)) from error
    except persistence.InternalError as wrapped:
        return wrapped


async def test_read_only_database_answers_503(make_client: Any, bearer: Any) -> None:
    """A write refused by a read-only database answers 503 with Retry-After, not 500."""
    client = await make_client([web.get("/boom", raising(_wrapped_read_only_error()))])
    response = await client.get("/boom", headers=bearer())
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"


async def test_unexpected_error_answers_500_without_internals(
    make_client: Any, bearer: Any
) -> None:
    """An unexpected exception answers 500 with the request id and none of its message."""
    client = await make_client([web.get("/boom", raising(KeyError("secret-internal-detail")))])
    response = await client.get("/boom", headers=bearer())
    text = await response.text()
    assert response.status == 500
    assert response.content_type == PROBLEM
    assert "secret-internal-detail" not in text
    assert "KeyError" not in text
    assert response.headers["X-Request-ID"] in text


async def test_unknown_route_is_a_404_problem(make_client: Any) -> None:
    """A path no route matches answers a 404 problem, even without a token."""
    client = await make_client()
    response = await client.get("/v1/nowhere")
    body = await response.json(content_type=PROBLEM)
    assert response.status == 404
    assert body["type"] == PROBLEM_TYPE_BASE + "not-found"
    assert "X-Request-ID" in response.headers


async def test_wrong_method_is_a_405_problem_with_allow(make_client: Any) -> None:
    """A method the path does not allow answers a 405 problem with the Allow header."""
    client = await make_client()
    response = await client.delete("/healthz")
    body = await response.json(content_type=PROBLEM)
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert "DELETE" in body["detail"]


async def test_handler_problem_keeps_its_headers_and_extensions(
    make_client: Any, bearer: Any
) -> None:
    """A Problem raised by a handler is sent as given, with its headers and extra members."""
    problem = Problem(
        503, "read model behind", headers={"Retry-After": "1"}, extensions={"position": 7}
    )
    client = await make_client([web.get("/boom", raising(problem))])
    response = await client.get("/boom", headers=bearer())
    body = await response.json(content_type=PROBLEM)
    assert (response.status, response.headers["Retry-After"], body["position"]) == (503, "1", 7)


async def test_redirects_pass_through(make_client: Any, bearer: Any) -> None:
    """A redirect raised by a handler (a merged customer's 308) is answered as a redirect."""
    redirect = web.HTTPPermanentRedirect("/v1/customers/survivor")
    client = await make_client([web.get("/boom", raising(redirect))])
    response = await client.get("/boom", headers=bearer(), allow_redirects=False)
    assert response.status == 308
    assert response.headers["Location"] == "/v1/customers/survivor"
    assert "X-Request-ID" in response.headers


def test_stray_validation_error_lists_each_field() -> None:
    """A pydantic error that escapes a handler is a 422 with one entry per error."""

    class Model(BaseModel):
        age: int
        name: str

    with pytest.raises(ValidationError) as caught:
        Model.model_validate({"age": "x"})
    problem = problem_from_exception(caught.value)
    assert problem.status == 422
    assert [e.field for e in problem.errors] == ["age", "name"]


async def test_error_mid_stream_drops_the_connection(make_client: Any, bearer: Any) -> None:
    """An error after a streamed response has started cuts it short instead of sending a 500."""

    async def half_export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"row 1\n")
        raise RuntimeError("export failed")

    client = await make_client([web.get("/export", half_export)])
    response = await client.get("/export", headers=bearer())
    assert response.status == 200
    with pytest.raises(ClientPayloadError):
        await response.read()
