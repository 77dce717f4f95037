"""The OpenAPI document describes the routes that run, and the docs page works offline."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.auth import requires
from gateway.openapi import build_openapi
from gateway.operations import Body, operation
from gateway.requests import json_response


class ExampleNoteIn(BaseModel):
    """A note to add."""

    model_config = ConfigDict(extra="forbid")
    text: str


class ExampleNoteOut(BaseModel):
    """The added note."""

    id: UUID
    text: str


class ListQuery(BaseModel):
    """Filters of a list."""

    model_config = ConfigDict(extra="forbid")
    limit: int = 50
    q: str | None = None


class LooseQuery(BaseModel):
    """A query model that forgot extra='forbid'."""

    limit: int = 50


@operation(
    "Add a note",
    tag="customers",
    request=ExampleNoteIn,
    responses={201: ExampleNoteOut},
    if_match="optional",
    response_headers=("ETag", "X-Event-Position", "Location"),
    errors=(409,),
)
@requires("admin", "staff")
async def add_example_note(request: web.Request) -> web.Response:
    """Declared like a resource handler."""
    return json_response({}, status=201)


@operation("List notes", tag="customers", query=ListQuery, responses={200: ExampleNoteOut})
async def list_notes(request: web.Request) -> web.Response:
    """Declared with a query model."""
    return json_response([])


@operation("Loose", tag="x", query=LooseQuery)
async def loose(request: web.Request) -> web.Response:
    """Declared with a query model that accepts unknown parameters."""
    return json_response([])


async def undeclared(request: web.Request) -> web.Response:
    """Not declared: absent from the document."""
    return json_response([])


ROUTES = [
    web.post("/v1/examples/{customer_id}/notes", add_example_note),
    web.get("/v1/examples/{customer_id}/notes", list_notes),
    web.get("/undeclared", undeclared),
]


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """The object a local `$ref` points at."""
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    """Every `$ref` in a JSON tree."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


@pytest.fixture
async def doc(make_client: Any) -> dict[str, Any]:
    """The served document of an app with the example routes."""
    client = await make_client(ROUTES)
    response = await client.get("/openapi.json")
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


async def test_document_is_openapi_31_with_every_declared_route(doc: dict[str, Any]) -> None:
    """The document is OpenAPI 3.1 and lists the declared routes, and only those."""
    assert doc["openapi"] == "3.1.0"
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} <= set(doc["paths"])
    assert set(doc["paths"]["/v1/examples/{customer_id}/notes"]) == {"get", "post"}
    assert "/undeclared" not in doc["paths"]
    assert not any("head" in ops for ops in doc["paths"].values())


async def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    """Every `$ref` points at something in the document."""
    for ref in refs(doc):
        assert ref.startswith("#/")
        resolve(doc, ref)


async def test_operation_declares_body_headers_and_errors(doc: dict[str, Any]) -> None:
    """A declared operation has its body, parameters, response headers and problem responses."""
    op = doc["paths"]["/v1/examples/{customer_id}/notes"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExampleNoteIn"
    }
    params = [resolve(doc, p["$ref"]) if "$ref" in p else p for p in op["parameters"]]
    assert {(p["name"], p["in"]) for p in params} >= {
        ("If-Match", "header"),
        ("Idempotency-Key", "header"),
        ("X-Request-ID", "header"),
    }
    created = op["responses"]["201"]
    assert set(created["headers"]) == {"X-Request-ID", "ETag", "X-Event-Position", "Location"}
    assert created["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExampleNoteOut"
    }
    for status in ("400", "401", "403", "404", "409", "412", "413", "415", "422", "500", "503"):
        content = op["responses"][status]["content"]
        assert content == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
        }
    assert op["x-roles"] == ["admin", "staff"]
    assert "security" not in op  # the document's default: bearer


async def test_query_model_becomes_parameters(doc: dict[str, Any]) -> None:
    """A query model's fields become query parameters with their schemas."""
    op = doc["paths"]["/v1/examples/{customer_id}/notes"]["get"]
    query = {p["name"]: p for p in op["parameters"] if p.get("in") == "query"}
    assert set(query) == {"limit", "q"}
    assert query["limit"]["schema"]["type"] == "integer"
    assert query["limit"]["required"] is False


async def test_open_routes_have_no_security(doc: dict[str, Any]) -> None:
    """Open routes say `security: []`; the rest use the bearer scheme."""
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["security"] == [{"bearerAuth": []}]
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert doc["paths"][path]["get"]["security"] == []


def test_query_models_must_forbid_unknown_parameters(make_settings: Any) -> None:
    """Building the document fails for a query model that would ignore unknown parameters."""
    from gateway.app import create_app

    app = create_app(make_settings(), extra_routes=[web.get("/loose", loose)])
    with pytest.raises(ValueError, match="extra='forbid'"):
        build_openapi(app)


def test_operation_ids_are_unique(make_settings: Any) -> None:
    """Building the document fails when two operations share an operationId."""
    from gateway.app import create_app

    app = create_app(
        make_settings(), extra_routes=[web.get("/a", list_notes), web.get("/b", list_notes)]
    )
    with pytest.raises(ValueError, match="list_notes"):
        build_openapi(app)


async def test_docs_page_and_its_assets_are_served_locally(make_client: Any) -> None:
    """/docs is an HTML page whose Swagger UI assets come from /docs/static, not the internet."""
    client = await make_client()
    page = await client.get("/docs")
    html = await page.text()
    assert page.status == 200
    assert page.content_type == "text/html"
    assert "/docs/static/swagger-ui-bundle.js" in html
    assert "/openapi.json" in html
    assert "https://" not in html
    asset = await client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.status == 200
    assert len(await asset.read()) > 100_000


async def test_operation_leaves_the_handler_unchanged() -> None:
    """The decorator only attaches metadata: the handler is the same callable."""

    async def handler(request: web.Request) -> web.Response:
        return json_response({})

    assert operation("x", tag="t", responses={204: Body()})(handler) is handler
