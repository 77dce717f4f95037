"""The AsyncAPI document: one channel per message, built from the models, and up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from projections.asyncapi import asyncapi_document, asyncapi_yaml
from projections.cloudevents import event_contracts

DEPLOYED = Path(__file__).parents[3] / "deploy" / "asyncapi.yaml"


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


def test_deploy_asyncapi_yaml_is_up_to_date() -> None:
    """deploy/asyncapi.yaml equals the document the models give (`customers asyncapi --output`)."""
    assert DEPLOYED.read_text() == asyncapi_yaml(), (
        "regenerate: .venv/bin/customers asyncapi --output deploy/asyncapi.yaml"
    )
    assert yaml.safe_load(DEPLOYED.read_text()) == asyncapi_document()


def test_every_subject_has_a_channel_a_send_operation_and_a_message() -> None:
    """Each public event type and each notification channel is a channel the service sends on."""
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in document["channels"].values()}
    expected = {c.subject for c in event_contracts().values()}
    assert addresses == expected | {"crm.notify.email", "crm.notify.sms", "crm.notify.staff"}
    assert {o["action"] for o in document["operations"].values()} == {"send"}
    assert len(document["operations"]) == len(document["channels"])


def test_every_reference_resolves() -> None:
    """Each `$ref` points at something in the document."""
    document = asyncapi_document()
    for reference in refs(document):
        node: Any = document
        for part in reference.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), reference


def test_the_schemas_never_mention_a_sealed_secret() -> None:
    """Installed systems are documented with `has_secret`, as they are published."""
    text = asyncapi_yaml()
    assert "sealed_secret" not in text
    system = asyncapi_document()["components"]["schemas"]["PublishedSystem"]
    assert "has_secret" in system["properties"]
