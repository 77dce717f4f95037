"""A tab of a customer's page (/v1/customers/{id}/...): what its routes do alike.

Every tab route starts the same way: the path's customer, which a customer token reaches
only when it is its own (404 otherwise, exactly as for a miss: API.md); then the id of the
tab's record, if the path names one; then If-Match, when the route takes one; then (in the
handler) its body. A command then runs in the thread pool with the customer (and record)
first, the expected version and the request's idempotency, and answers its receipt: ETag,
X-Event-Position, and Location for what it created. A tab's list is a keyset page of its
read model (`gateway.listing`), which first waits for the caller's `min_position`.

What the customer itself is (unknown, deleted, erased, merged away) is decided by the
service, not here: an unknown customer is 404, and a tombstone or an erased customer
refuses what it no longer takes with 409 (a tombstone's naming the survivor); the error
middleware maps those like any other refusal. Only the customer's own GET answers a
tombstone with 308 to the survivor (`gateway.customers`). So a tab module says only what
is its own: paths, bodies, the command's arguments and the shape of its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from domain.service import Receipt
from gateway.commands import answer, idempotency_of, service_of
from gateway.requests import optional_if_match, path_uuid, require_if_match
from gateway.schemas import CommandOut
from gateway.scopes import require_visible_customer
from gateway.threads import run_sync

__all__ = ["Tab", "tab_customer"]

IfMatch = Literal["required", "optional"]


def tab_customer(request: web.Request) -> UUID:
    """The path's customer, if the caller may see it; else 404 as for a miss."""
    return require_visible_customer(request, path_uuid(request))


@dataclass(frozen=True)
class Tab:
    """One request to a tab: its customer, its record and the version it expects."""

    request: web.Request
    customer_id: UUID
    part_id: UUID | None
    takes_version: bool
    expected: int | None

    @classmethod
    def of(
        cls, request: web.Request, *, part: str | None = None, if_match: IfMatch | None = None
    ) -> Tab:
        """The customer, the record named by the path parameter `part`, and If-Match
        (428 when `required` and missing), checked in that order."""
        customer_id = tab_customer(request)
        part_id = path_uuid(request, part) if part is not None else None
        expected = (
            require_if_match(request)
            if if_match == "required"
            else optional_if_match(request)
            if if_match == "optional"
            else None
        )
        return cls(request, customer_id, part_id, if_match is not None, expected)

    @property
    def ids(self) -> tuple[UUID, ...]:
        return (self.customer_id,) if self.part_id is None else (self.customer_id, self.part_id)

    async def run(
        self, command: str, *args: Any, idempotent: bool = True, **kwargs: Any
    ) -> Receipt:
        """The service's `command` with the ids, `args`, the expected version (when the
        route takes If-Match) and the Idempotency-Key (unless the command takes none)."""
        if self.takes_version:
            kwargs["expected_version"] = self.expected
        if idempotent:
            kwargs["idempotency"] = await idempotency_of(self.request)
        call = getattr(service_of(self.request), command)
        result: Receipt = await run_sync(self.request, call, *self.ids, *args, **kwargs)
        return result

    async def get(self, query: str) -> Any:
        """The service's `query` of the tab's record, as it is now (event store)."""
        return await run_sync(self.request, getattr(service_of(self.request), query), *self.ids)

    def created(
        self, receipt: Receipt, path: str, model: type[BaseModel] = CommandOut
    ) -> web.Response:
        """201 with the receipt, Location at `path` under the customer."""
        location = f"/v1/customers/{self.customer_id}/{path}"
        return answer(receipt, model, status=201, location=location)
