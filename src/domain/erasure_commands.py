"""Erasure (GDPR, by crypto-shredding) and revealing a sealed equipment secret.

Erasing records `Customer.Erased`, releases the customer's email, mobile phone and
username in the same atomic save, and then destroys the customer's data key
(`domain.key_ring`): every personal field of every event about the customer
(`domain.personal_data`) becomes unreadable, while the stream itself stays as it was and
replays, redacted. Revealing a secret records who saw which system's secret, never the
secret.

Merged customers were the same person as their survivor, and their personal data moved
onto it: erasing a survivor erases every customer merged into it too (through chains),
in the same save, and destroys all their keys. A merged customer (a tombstone) is not
erased alone: the request is refused naming the survivor to erase.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.customers import Customer
from domain.errors import MergedCustomerError, VersionMismatchError
from domain.merge_commands import MergeCommands, held_values
from domain.write_path import Change, Receipt

__all__ = ["ErasureCommands"]


class ErasureCommands(MergeCommands):
    """Erasure and secret reveal, on the customer commands' write path."""

    def erase_customer(self, customer_id: UUID, *, expected_version: int) -> Receipt:
        """GDPR erasure: record it, release the customer's email, mobile phone and username,
        then destroy the customer's data key. Erasing an erased customer changes nothing and
        answers the same (whatever If-Match it sends: the first erasure moved the version)."""
        customer = self._customer(customer_id, None)
        if customer.erased:
            return self._erased(customer)
        merged: list[Customer] = []

        def attempt() -> Change:
            fresh = self._customer(customer_id, None)
            if fresh.erased:  # a concurrent erasure won while this one waited its turn
                raise _AlreadyErasedError(fresh)
            if fresh.version != expected_version:
                raise VersionMismatchError(expected_version, fresh.version)
            if fresh.merged_into is not None:
                raise MergedCustomerError(fresh.id, fresh.merged_into)
            merged[:] = self.merged_customers(fresh)
            held = held_values(self, fresh)  # the number stays taken for good
            for each in (fresh, *merged):
                each.erase()
            releases: list[Aggregate] = [
                self._release(name, value, fresh.id) for name, value in held
            ]
            change = self._changed(fresh, [*merged, *releases])
            change.result["erased"] = True
            return change

        try:
            receipt = self.execute(attempt, None, key=customer_id)
        except _AlreadyErasedError as already:
            return self._erased(already.customer)
        # After the event, so a refused erasure (412) destroys nothing; a crash in between
        # leaves an erased customer with a key, which erasing again destroys.
        for each in (customer, *merged):
            self.key_ring.destroy(each.id)
        return receipt

    def _erased(self, customer: Customer) -> Receipt:
        # Finishes an erasure that a crash cut short.
        for each in (customer, *self.merged_customers(customer)):
            self.key_ring.destroy(each.id)
        result = {"id": customer.id, "version": customer.version, "erased": True}
        position = self.recorder.max_notification_id() or 0
        return Receipt(customer.id, customer.version, position, result, replayed=True)

    def reveal_secret(self, customer_id: UUID, system_id: UUID) -> tuple[Receipt, str]:
        """An equipment secret in clear, after recording who was shown it (never what)."""
        sealed: list[str] = []

        def attempt() -> Change:
            customer = self._customer(customer_id, None)
            sealed[:] = [customer.reveal_secret(system_id)]
            return self._changed(customer)

        # No idempotency record: it would keep the answer, and the answer is the secret.
        receipt = self.execute(attempt, None, key=customer_id)
        return receipt, self.unseal_secret(customer_id, sealed[0])


class _AlreadyErasedError(Exception):
    def __init__(self, customer: Customer) -> None:
        super().__init__(customer.id)
        self.customer = customer
