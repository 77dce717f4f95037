"""The OpenAPI 3.1 document, built from what the handlers declare and the routes that exist.

Handlers declare their operations with `operations.operation`; `build_openapi(app)` walks
the app's routes, so a route without a declaration is simply absent and a declaration
without a route cannot appear: the served document agrees with what runs. Schemas come
from pydantic; the problem+json schema is attached to every 4xx/5xx; bearer auth is the
default, and the open routes (the same table the auth middleware uses) say
`security: []`. Every POST documents Idempotency-Key, as API.md promises it for all.
Links between operations (register, then read and change by id) come from
`openapi_links`, derived from the paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib import metadata
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.auth import is_open, roles_of
from gateway.openapi_links import add_links
from gateway.operations import Body, Operation, operation_of
from gateway.problems import PROBLEM_CONTENT_TYPE, ProblemDetails

__all__ = ["build_openapi"]

REF = "#/components/schemas/{model}"
_ETAG = {"type": "string", "pattern": '^"([0-9]+|[0-9a-f]{64})"$'}
_REQUEST_ID = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}
_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"description": "The request id; quote it in reports.", "schema": _REQUEST_ID},
    "ETag": {
        "description": 'The aggregate version: "<version>"; a file download\'s is the'
        " SHA-256 of its content.",
        "schema": _ETAG,
    },
    "X-Event-Position": {
        "description": "Global position of the command's last event (use as min_position).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Location": {"description": "The resource's URL.", "schema": {"type": "string"}},
    "X-Total-Count": {
        "description": "How many items the (streamed) body holds.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "The Bearer challenge.", "schema": {"type": "string"}},
    "Allow": {"description": "The methods the path allows.", "schema": {"type": "string"}},
    "Content-Disposition": {
        "description": "attachment; filename=\"<ASCII name>\"; filename*=UTF-8''<the name>",
        "schema": {"type": "string"},
    },
}
_ERROR_HEADERS = {401: ("WWW-Authenticate",), 405: ("Allow",), 503: ("Retry-After",)}


def _header(name: str, required: bool, description: str, schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema,
    }


_PARAMETERS: dict[str, dict[str, Any]] = {
    # Any value is accepted (an insane one is replaced, never refused): the request side has
    # no pattern, only the echoed response header has.
    "X-Request-ID": _header(
        "X-Request-ID",
        False,
        "Yours if 1-128 of A-Z a-z 0-9 . _ -, else replaced by a generated one.",
        {"type": "string"},
    ),
    "If-Match": _header(
        "If-Match", True, "The ETag you saw: 412 if no longer current, 428 if absent.", _ETAG
    ),
    "If-Match-Optional": _header(
        "If-Match", False, "The ETag you saw; without it the latest version is used.", _ETAG
    ),
    "Idempotency-Key": _header(
        "Idempotency-Key",
        False,
        "A retry with the same key and body returns the first response.",
        {"type": "string", "minLength": 1, "maxLength": 255},
    ),
}


def build_openapi(app: web.Application, *, title: str = "Customers API") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared operation routed in `app`."""
    routes = [
        (route.method, route.resource.canonical, route.handler, declared)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and (declared := operation_of(route.handler)) is not None
    ]
    pairs: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ProblemDetails, "serialization"): None
    }
    for _, _, _, declared in routes:
        request_model = declared.request.model if declared.request is not None else None
        for model in (declared.query, declared.path, request_model):
            if model is not None:
                pairs[(model, "validation")] = None
        for body in declared.responses.values():
            if body.model is not None:
                pairs[(body.model, "serialization")] = None
    refs, defs = models_json_schema(list(pairs), ref_template=REF)
    schemas: dict[str, Any] = defs.get("$defs", {})
    builder = _Builder(refs, schemas)
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for method, template, handler, declared in routes:
        op = builder.operation(method, template, handler, declared)
        if op["operationId"] in seen_ids:
            raise ValueError(f"two operations are named {op['operationId']!r}")
        seen_ids.add(op["operationId"])
        paths.setdefault(template, {})[method.lower()] = op
    add_links(paths, schemas, _PARAMETERS)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": _version()},
        "tags": [{"name": t} for t in sorted({d.tag for *_, d in routes})],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
        },
        "security": [{"bearerAuth": []}],
    }


@dataclass(slots=True)
class _Builder:
    refs: Mapping[tuple[Any, JsonSchemaMode], Any]
    schemas: Mapping[str, Any]

    def operation(
        self, method: str, template: str, handler: Any, declared: Operation
    ) -> dict[str, Any]:
        public = is_open(method, template)
        roles = roles_of(handler)
        description = declared.description
        if roles:
            description = f"{description}\n\nRoles: {', '.join(roles)}.".strip()
        params = [_param_ref("X-Request-ID")]
        if declared.if_match is not None:
            params.append(
                _param_ref("If-Match" if declared.if_match == "required" else "If-Match-Optional")
            )
        if method == "POST":
            params.append(_param_ref("Idempotency-Key"))
        params += self._model_params(declared.path, "path") + self._model_params(
            declared.query, "query"
        )
        op: dict[str, Any] = {
            "operationId": declared.operation_id or handler.__name__,
            "summary": declared.summary,
            "tags": [declared.tag],
            "parameters": params,
            "responses": self._responses(method, template, declared, public, bool(roles)),
        }
        if description:
            op["description"] = description
        if roles:
            op["x-roles"] = list(roles)
        if declared.request is not None:
            op["requestBody"] = self._request_body(method, declared.request)
        if public:
            op["security"] = []
        if declared.deprecated:
            op["deprecated"] = True
        return op

    def _model_params(self, model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
        if model is None:
            return []
        if where == "query" and model.model_config.get("extra") != "forbid":
            raise ValueError(f"query model {model.__name__} must set extra='forbid'")
        schema = self.schemas[self.refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]]
        required = set(schema.get("required", ()))
        return [
            {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                "schema": prop,
                **({"description": prop["description"]} if "description" in prop else {}),
            }
            for name, prop in schema.get("properties", {}).items()
        ]

    def _request_body(self, method: str, body: Body) -> dict[str, Any]:
        if body.model is not None and body.model.model_config.get("extra") != "forbid":
            raise ValueError(f"request model {body.model.__name__} must set extra='forbid'")
        media = {body.media_type: self._media(body, "validation")}
        if method == "PATCH" and body.media_type == "application/json":
            media["application/merge-patch+json"] = media[body.media_type]
        media.update({kind: {"schema": dict(schema)} for kind, schema in body.variants.items()})
        out: dict[str, Any] = {"required": body.required, "content": media}
        if body.description:
            out["description"] = body.description
        return out

    def _responses(
        self, method: str, template: str, declared: Operation, public: bool, has_roles: bool
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for status, body in sorted(declared.responses.items()):
            if status >= 400:
                continue
            response: dict[str, Any] = {
                "description": body.description or HTTPStatus(status).phrase,
                "headers": _header_refs(("X-Request-ID", *declared.response_headers)),
            }
            if body.model is not None or body.schema is not None:
                media = self._media(body, "serialization")
                response["content"] = {t: media for t in (body.media_type, *body.also_as)}
            out[str(status)] = response
        problem = {"schema": self.refs[(ProblemDetails, "serialization")]}
        for status in sorted(_error_statuses(method, template, declared, public, has_roles)):
            given = declared.responses.get(status)
            out[str(status)] = {
                "description": (given and given.description) or HTTPStatus(status).phrase,
                "headers": _header_refs(("X-Request-ID", *_ERROR_HEADERS.get(status, ()))),
                "content": {PROBLEM_CONTENT_TYPE: problem},
            }
        return out

    def _media(self, body: Body, mode: JsonSchemaMode) -> dict[str, Any]:
        if body.model is not None:
            return {"schema": self.refs[(body.model, mode)]}
        return {"schema": dict(body.schema)} if body.schema is not None else {}


def _error_statuses(
    method: str, template: str, declared: Operation, public: bool, has_roles: bool
) -> set[int]:
    # 400 for any request: aiohttp's parser refuses a request line or header over 8190
    # bytes, or too many headers, before a handler runs.
    statuses = {400, 500, *declared.errors, *(s for s in declared.responses if s >= 400)}
    # Any request: a card number in its path, query or logged headers (gateway.card_refusal).
    statuses.add(422)
    if not public:
        statuses |= {401, 503}
    if has_roles:
        statuses |= {403, 404}
    if "{" in template:
        statuses.add(404)
    if declared.request is not None:
        statuses |= {400, 408, 413, 415, 422}
    if declared.query is not None:
        statuses.add(422)
    if declared.if_match is not None:
        statuses |= {400, 412} | ({428} if declared.if_match == "required" else set())
    if method == "POST":
        statuses |= {400, 422}  # a malformed Idempotency-Key; a reused key with another body
    if method != "GET" and not public:
        # Any command reaches the domain, whose refusals of a state (not blocked, deleted,
        # a value taken, a transition not allowed) are ConflictErrors: 409 for every one.
        statuses.add(409)
    return statuses


def _param_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _header_refs(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in dict.fromkeys(names)}


def _version() -> str:
    try:
        return metadata.version("customers")
    except metadata.PackageNotFoundError:
        return "0.0.0"
