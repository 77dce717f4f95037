"""The document's links take a client from a registration to the customer's operations."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import create_app
from gateway.openapi import build_openapi


@pytest.fixture
def document(make_settings: Any) -> dict[str, Any]:
    return build_openapi(create_app(make_settings()))


def test_a_registration_links_to_the_customer_s_operations_with_its_id_and_etag(
    document: dict[str, Any],
) -> None:
    """POST /v1/customers' 201 links to GET and PATCH by id; PATCH gets If-Match from ETag."""
    links = document["paths"]["/v1/customers"]["post"]["responses"]["201"]["links"]
    assert links["get_customer"]["parameters"] == {"path.id": "$response.body#/id"}
    assert links["patch_customer"]["parameters"] == {
        "path.id": "$response.body#/id",
        "header.If-Match": "$response.header.ETag",
    }
    # A booking and a ticket name the customer in their body.
    assert links["book"]["requestBody"] == {"customer_id": "$response.body#/id"}


def test_reading_a_customer_links_to_changing_it_with_the_etag_read(
    document: dict[str, Any],
) -> None:
    """GET /v1/customers/{id}'s 200 links to PATCH with the same id and the ETag read."""
    links = document["paths"]["/v1/customers/{id}"]["get"]["responses"]["200"]["links"]
    assert links["patch_customer"]["parameters"] == {
        "path.id": "$request.path.id",
        "header.If-Match": "$response.header.ETag",
    }


def test_every_link_names_an_operation_of_the_document(document: dict[str, Any]) -> None:
    """No link points at an operation that is not routed."""
    ids = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    targets = {
        link["operationId"]
        for path in document["paths"].values()
        for op in path.values()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    }
    assert targets and targets <= ids
