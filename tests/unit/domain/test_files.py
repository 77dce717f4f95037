"""Customer files in memory: what an upload records, who may have files, delete, erasure."""

from __future__ import annotations

import dataclasses
import hashlib
from uuid import UUID, uuid4

import pytest

from domain.errors import (
    ConflictError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.file_commands import file_id_for
from domain.files import CustomerFile
from domain.service import CustomerService, Idempotency

SHA = hashlib.sha256(b"backup").hexdigest()


@pytest.fixture
def customer(service: CustomerService) -> UUID:
    return service.register_customer({"first_name": "Ann"}).aggregate_id


def upload(service: CustomerService, customer: UUID, name: str = "alarm.cfg", **kw: object) -> UUID:
    file_id = uuid4()
    values: dict[str, object] = {
        "name": name,
        "size": 6,
        "content_type": "application/octet-stream",
        "sha256": SHA,
        "uploader": "bob@shop",
        **kw,
    }
    service.upload_file(customer, file_id, **values)  # type: ignore[arg-type]
    return file_id


def test_an_upload_records_the_metadata_and_never_the_bytes(
    service: CustomerService, customer: UUID
) -> None:
    """The file keeps name, size, type, hash and uploader; its event has no content field."""
    file = service.get_file(customer, upload(service, customer))
    assert (file.name, file.size, file.sha256, file.uploader) == ("alarm.cfg", 6, SHA, "bob@shop")
    assert not file.deleted and file.version == 1
    envelope = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    fields = {f.name for f in dataclasses.fields(CustomerFile.Uploaded)} - envelope
    assert fields == {"actor", "correlation_id", "customer_id", "name", "size"} | {
        "content_type",
        "sha256",
        "uploader",
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "  "}, "filename"),
        ({"name": "x" * 256}, "filename"),
        ({"name": "a/b.txt"}, "filename"),
        ({"name": "a\nb.txt"}, "filename"),
        ({"size": 0}, "file"),
        ({"sha256": "not-a-hash"}, "sha256"),
    ],
)
def test_an_upload_is_refused_naming_the_field(
    service: CustomerService, customer: UUID, changes: dict[str, object], field: str
) -> None:
    """Blank, long or path-like names, empty content, a malformed hash: 422 naming it."""
    with pytest.raises(RuleViolationError) as refused:
        upload(service, customer, **changes)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_files_are_only_for_a_live_customer_at_the_version_seen(
    service: CustomerService, customer: UUID
) -> None:
    """Unknown 404, stale If-Match 412, deleted or erased 409."""
    with pytest.raises(NotFoundError):
        upload(service, uuid4())
    with pytest.raises(VersionMismatchError):
        upload(service, customer, expected_version=9)
    upload(service, customer, expected_version=1)
    service.delete_customer(customer, expected_version=1)
    with pytest.raises(ConflictError):
        upload(service, customer)
    other = service.register_customer({"first_name": "Bo"}).aggregate_id
    service.erase_customer(other, expected_version=1)
    with pytest.raises(ConflictError):
        upload(service, other)


def test_a_deleted_file_is_not_found_and_cannot_be_deleted_again(
    service: CustomerService, customer: UUID
) -> None:
    """Delete needs the file's version; afterwards the file is gone for every query."""
    file_id = upload(service, customer)
    with pytest.raises(VersionMismatchError):
        service.delete_file(customer, file_id, expected_version=2)
    receipt = service.delete_file(customer, file_id, expected_version=1)
    assert receipt.version == 2
    with pytest.raises(NotFoundError):
        service.get_file(customer, file_id)
    with pytest.raises(NotFoundError):
        service.delete_file(customer, file_id, expected_version=2)


def test_another_customers_file_is_not_found_under_this_customer(
    service: CustomerService, customer: UUID
) -> None:
    """A file id is looked up under its own customer only."""
    other = service.register_customer({"first_name": "Bo"}).aggregate_id
    file_id = upload(service, other)
    with pytest.raises(NotFoundError):
        service.get_file(customer, file_id)


def test_an_erased_customers_files_are_not_found_and_their_names_unreadable(
    service: CustomerService, customer: UUID
) -> None:
    """The name is personal: after erasure the stream replays with it redacted, and the
    file itself is gone."""
    file_id = upload(service, customer, name="Ann's house plan.pdf")
    raw = b"".join(n.state for n in service.recorder.select_notifications(start=1, limit=1000))
    assert b"house plan" not in raw, "stored encrypted"
    service.erase_customer(customer, expected_version=1)
    with pytest.raises(NotFoundError):
        service.get_file(customer, file_id)
    replayed: CustomerFile = service.repository.get(file_id)
    assert replayed.name == "" and replayed.sha256 == SHA


def test_a_keyed_upload_names_the_same_file_on_every_retry() -> None:
    """The file id of a keyed upload is derived from its idempotency record."""
    keyed = Idempotency(uuid4(), "fingerprint")
    assert file_id_for(keyed) == file_id_for(keyed)
    assert file_id_for(None) != file_id_for(None)
