"""Every command about prepaid packages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain.errors import NotFoundError, VersionMismatchError
from domain.packages import Package
from domain.references import customer_of_part, followed
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["PackageCommands"]


class PackageCommands(WritePath):
    """The packages part of the service; `clock` is set by the service."""

    clock: Callable[[], datetime]

    def buy_package(
        self,
        customer_id: UUID,
        *,
        name: str,
        sessions: int,
        service_id: str | None = None,
        expires_at: datetime | None = None,
        price: Decimal | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Sell the customer a bundle of sessions."""

        seen: list[int] = []

        def attempt() -> Change:
            seen[:] = [customer_of_part(self, customer_id).version]
            package = Package.buy(
                customer_id=customer_id,
                name=name,
                sessions=sessions,
                now=self.clock(),
                service_id=service_id,
                expires_at=expires_at,
                price=price,
            )
            return _changed(package)

        return followed(self, self.execute(attempt, idempotency), customer_id, seen)

    def use_package_session(
        self,
        customer_id: UUID,
        package_id: UUID,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Take one session. Without `expected_version` it is decided on the package as it
        is when saved: two uses of the last session at once, and only one wins."""

        def attempt() -> Change:
            package = self._package(customer_id, package_id, expected_version)
            customer_of_part(self, customer_id)
            use_id = package.use(self.clock())
            change = _changed(package)
            change.result.update(use_id=use_id, sessions_left=package.sessions_left)
            return change

        return self.execute(attempt, idempotency, key=package_id)

    def deactivate_package(
        self,
        customer_id: UUID,
        package_id: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Make the package unusable (sessions left stay as they were)."""

        def attempt() -> Change:
            package = self._package(customer_id, package_id, expected_version)
            package.deactivate()
            return _changed(package)

        return self.execute(attempt, idempotency, key=package_id)

    def _package(self, customer_id: UUID, package_id: UUID, expected: int | None) -> Package:
        package: Package = self.load(package_id, Package, None)
        if package.customer_id != customer_id:
            raise NotFoundError("package", package_id)
        if expected is not None and expected != package.version:
            raise VersionMismatchError(expected, package.version)
        return package


def _changed(package: Package) -> Change:
    return Change(
        package.id, package.version, {"id": package.id, "version": package.version}, [package]
    )
