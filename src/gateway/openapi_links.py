"""OpenAPI `links`, derived from the paths: how the answer of one operation feeds the next.

A client (and a stateful fuzzer) follows them to go from registering a customer to reading,
changing and deleting it, without guessing ids or versions. They follow from the shape of
the paths, so a new operation is linked as soon as it is routed:

- **created**: a `201` of `POST /c` whose body has an `id` links to every operation on
  `/c/{p}` and below it, with `p` = that id; and to every operation whose body or query
  has a `<c singular>_id` field (`POST /v1/appointments` takes `customer_id`).
- **read, then act**: the `200` with an `ETag` of `GET /c/{p}` links to every operation
  on `/c/{p}` and below, with `p` from the request's path. Only the read links on: a
  command's answer linking on as well would make every command a place to start a walk
  from, with made-up ids (a stateful fuzzer starts walks at operations with links out).

`If-Match` is filled from the source's `ETag` wherever the target takes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["add_links"]

_PARAM = re.compile(r"\{([^}]+)\}")


def add_links(
    paths: Mapping[str, Mapping[str, dict[str, Any]]],
    schemas: Mapping[str, Any],
    parameters: Mapping[str, Mapping[str, Any]],
) -> None:
    """Add `links` to the 2xx responses of `paths`' operations (in place)."""
    operations = [
        (template, method, op)
        for template, methods in paths.items()
        for method, op in methods.items()
    ]
    for template, method, op in operations:
        for status, response in op["responses"].items():
            if not status.startswith("2"):
                continue
            links: dict[str, Any] = {}
            has_etag = "ETag" in response.get("headers", {})
            if method == "post" and status == "201" and _body_has(response, "id", schemas):
                links.update(_created_links(template, operations, has_etag, schemas, parameters))
            root = _resource_root(template)
            if method == "get" and has_etag and root == template:
                links.update(_same_resource_links(root, operations, parameters))
            if links:
                response["links"] = links


def _created_links(
    collection: str,
    operations: list[tuple[str, str, dict[str, Any]]],
    has_etag: bool,
    schemas: Mapping[str, Any],
    parameters: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    if "{" in collection:
        return {}
    links: dict[str, Any] = {}
    reference = collection.rstrip("/").rsplit("/", 1)[-1].removesuffix("s") + "_id"
    for template, _, target in operations:
        names = _PARAM.findall(template[len(collection) :])
        below = template.startswith(collection + "/{") and names
        if below:
            values = {f"path.{names[0]}": "$response.body#/id"}
            if has_etag and "If-Match" in _header_names(target, parameters):
                values["header.If-Match"] = "$response.header.ETag"
            links[_name(target)] = {"operationId": target["operationId"], "parameters": values}
        elif reference in _query_names(target, parameters):
            links[_name(target)] = {
                "operationId": target["operationId"],
                "parameters": {f"query.{reference}": "$response.body#/id"},
            }
        elif _request_has(target, reference, schemas):
            links[_name(target)] = {
                "operationId": target["operationId"],
                "requestBody": {reference: "$response.body#/id"},
                # Schemathesis merges this field into the body it generates.
                "x-schemathesis": {"merge_body": True},
            }
    return links


def _same_resource_links(
    root: str,
    operations: list[tuple[str, str, dict[str, Any]]],
    parameters: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    links: dict[str, Any] = {}
    names = _PARAM.findall(root)
    for template, _, target in operations:
        if template != root and not template.startswith(root + "/"):
            continue
        values = {f"path.{name}": f"$request.path.{name}" for name in names}
        if "If-Match" in _header_names(target, parameters):
            values["header.If-Match"] = "$response.header.ETag"
        links[_name(target)] = {"operationId": target["operationId"], "parameters": values}
    return links


def _resource_root(template: str) -> str | None:
    """`/v1/customers/{id}` of `/v1/customers/{id}/notes/{part_id}`; None without a parameter."""
    match = _PARAM.search(template)
    return template[: match.end()] if match else None


def _name(target: dict[str, Any]) -> str:
    return str(target["operationId"])


def _resolved(parameter: Mapping[str, Any], parameters: Mapping[str, Mapping[str, Any]]) -> Any:
    reference = parameter.get("$ref")
    return parameters[reference.rsplit("/", 1)[-1]] if reference else parameter


def _header_names(op: dict[str, Any], parameters: Mapping[str, Mapping[str, Any]]) -> set[str]:
    resolved = (_resolved(p, parameters) for p in op.get("parameters", ()))
    return {p["name"] for p in resolved if p["in"] == "header"}


def _query_names(op: dict[str, Any], parameters: Mapping[str, Mapping[str, Any]]) -> set[str]:
    resolved = (_resolved(p, parameters) for p in op.get("parameters", ()))
    return {p["name"] for p in resolved if p["in"] == "query"}


def _properties(media: Mapping[str, Any], schemas: Mapping[str, Any]) -> set[str]:
    schema = media.get("schema", {})
    reference = schema.get("$ref")
    if reference:
        schema = schemas.get(reference.rsplit("/", 1)[-1], {})
    return set(schema.get("properties", {}))


def _body_has(response: Mapping[str, Any], name: str, schemas: Mapping[str, Any]) -> bool:
    media = response.get("content", {}).get("application/json")
    return media is not None and name in _properties(media, schemas)


def _request_has(op: Mapping[str, Any], name: str, schemas: Mapping[str, Any]) -> bool:
    media = op.get("requestBody", {}).get("content", {}).get("application/json")
    return media is not None and name in _properties(media, schemas)
