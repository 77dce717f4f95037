"""Every command and query about customer files (their metadata: the content is stored
apart, by SHA-256, before the upload's event is saved).

The file's id is chosen by the caller, which stores the content under it first; a keyed
upload derives it from its idempotency record (`file_id_for`), so a retry names the same
file and stores nothing twice.
"""

from __future__ import annotations

from uuid import UUID, uuid4, uuid5

from domain.customers import Customer
from domain.errors import ConflictError, MergedCustomerError, NotFoundError, VersionMismatchError
from domain.files import CustomerFile
from domain.references import followed
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["FileCommands", "file_id_for"]

_NAMESPACE = UUID("9d0c6b8e-3f4a-4e21-b7c5-5a8e1f2d6c47")


def file_id_for(idempotency: Idempotency | None) -> UUID:
    """The id of an upload's file: derived from its Idempotency-Key's record, else new."""
    return uuid5(_NAMESPACE, str(idempotency.record_id)) if idempotency else uuid4()


class FileCommands(WritePath):
    """The files part of the service."""

    def upload_file(
        self,
        customer_id: UUID,
        file_id: UUID,
        *,
        name: str,
        size: int,
        content_type: str,
        sha256: str,
        uploader: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Record a file whose content is stored: 404 unknown customer, 409 erased or
        deleted, 412 when `expected_version` is not the customer's version."""

        seen: list[int] = []

        def attempt() -> Change:
            seen[:] = [self.check_customer_takes_files(customer_id, expected_version)]
            file = CustomerFile.upload(
                file_id=file_id,
                customer_id=customer_id,
                name=name,
                size=size,
                content_type=content_type,
                sha256=sha256,
                uploader=uploader,
            )
            change = _changed(file)
            change.result.update(size=size, content_type=content_type, sha256=sha256)
            return change

        return followed(self, self.execute(attempt, idempotency), customer_id, seen)

    def delete_file(
        self,
        customer_id: UUID,
        file_id: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Soft-delete a file (If-Match on the file's version); the caller then lets its
        content go unless another live file has it."""

        def attempt() -> Change:
            file = self.get_file(customer_id, file_id)
            if file.version != expected_version:
                raise VersionMismatchError(expected_version, file.version)
            file.delete()
            return _changed(file)

        return self.execute(attempt, idempotency, key=file_id)

    def check_customer_takes_files(self, customer_id: UUID, expected_version: int | None) -> int:
        """404 unknown, 409 erased, merged or deleted, 412 another version than expected;
        the customer's version."""
        customer: Customer = self.load(customer_id, Customer, None)
        if customer.erased:
            raise ConflictError(f"customer {customer_id} is erased", field="customer_id")
        if customer.merged_into is not None:
            raise MergedCustomerError(customer.id, customer.merged_into, field="customer_id")
        if customer.deleted:
            raise ConflictError(
                f"customer {customer_id} is deleted; restore it first", field="customer_id"
            )
        if expected_version is not None and expected_version != customer.version:
            raise VersionMismatchError(expected_version, customer.version)
        return customer.version

    def get_file(self, customer_id: UUID, file_id: UUID) -> CustomerFile:
        """A live file of that customer: another customer's, a deleted one, or one of an
        erased customer (whose files are destroyed) is not found."""
        file: CustomerFile = self.load(file_id, CustomerFile, None)
        if file.customer_id != customer_id or file.deleted:
            raise NotFoundError("file", file_id)
        customer: Customer = self.load(customer_id, Customer, None)
        if customer.erased:
            raise NotFoundError("file", file_id)
        return file


def _changed(file: CustomerFile) -> Change:
    return Change(file.id, file.version, {"id": file.id, "version": file.version}, [file])
