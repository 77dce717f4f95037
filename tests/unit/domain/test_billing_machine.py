"""A Hypothesis state machine settling invoices with payments, refunds and customer credit.

Rules issue invoices, pay and refund any amount (too much included), add credit, apply
any amount of it, and void. A simple model predicts each refusal and every amount; the
invariants check that no invoice is settled past its total or refunded below zero, that
the customer's credit never goes below zero, that each status follows from the amounts,
and that replaying the recorded events gives the live state.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.errors import ConflictError, DomainError
from domain.invoices import Invoice
from domain.sealing import SecretSealer
from domain.service import CustomerService

SETTINGS = settings(max_examples=50, stateful_step_count=30, deadline=None)
ISSUED = datetime(2026, 3, 1, tzinfo=UTC)
cents = st.integers(1, 30_000).map(lambda n: Decimal(n).scaleb(-2))


@dataclass
class Expected:
    number: str
    total: Decimal
    paid: Decimal = Decimal("0.00")
    credited: Decimal = Decimal("0.00")
    void: bool = False

    @property
    def open_amount(self) -> Decimal:
        return Decimal("0.00") if self.void else self.total - self.paid - self.credited

    @property
    def status(self) -> str:
        if self.void:
            return "void"
        if self.paid + self.credited >= self.total:
            return "paid"
        return "partially_paid" if self.paid + self.credited > 0 else "open"


class Settling(RuleBasedStateMachine):
    """One customer's invoices, payments and credit."""

    def __init__(self) -> None:
        super().__init__()
        self.service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
        self.customer_id: UUID | None = None
        self.invoices: dict[UUID, Expected] = {}
        self.balance = Decimal("0.00")
        self.numbers = itertools.count(1)

    @initialize()
    def a_customer(self) -> None:
        self.customer_id = self.service.register_customer({"first_name": "Ann"}).aggregate_id

    def pick(self, data: st.DataObject) -> UUID:
        return data.draw(st.sampled_from(sorted(self.invoices, key=str)))

    @rule(prices=st.lists(cents, min_size=1, max_size=3), quantity=st.integers(1, 3))
    def issue(self, prices: list[Decimal], quantity: int) -> None:
        assert self.customer_id is not None
        number = f"INV-{next(self.numbers)}"
        lines = [
            {"description": "x", "quantity": Decimal(quantity), "unit_price": p} for p in prices
        ]
        receipt = self.service.record_invoice(self.customer_id, number, "EUR", lines, ISSUED)
        total = sum((p * quantity for p in prices), Decimal("0.00"))
        assert receipt.result["total"] == total
        self.invoices[receipt.aggregate_id] = Expected(number, total)

    @rule(data=st.data(), amount=cents, refund=st.booleans())
    def pay(self, data: st.DataObject, amount: Decimal, refund: bool) -> None:
        if not self.invoices:
            return
        expected = self.invoices[self.pick(data)]
        refused = (
            expected.void
            or (not refund and amount > expected.open_amount)
            or (refund and amount > expected.paid)
        )
        assert self.customer_id is not None
        try:
            self.service.record_payment(
                self.customer_id,
                f"PAY-{next(self.numbers)}",
                kind="refund" if refund else "payment",
                amount=amount,
                currency="EUR",
                method="cash",
                paid_at=ISSUED,
                invoice_number=expected.number,
            )
        except ConflictError:
            assert refused
            return
        assert not refused
        expected.paid += -amount if refund else amount

    @rule(amount=cents)
    def add_credit(self, amount: Decimal) -> None:
        assert self.customer_id is not None
        self.service.add_credit(self.customer_id, amount, "goodwill")
        self.balance += amount

    @rule(data=st.data(), amount=cents)
    def apply_credit(self, data: st.DataObject, amount: Decimal) -> None:
        if not self.invoices:
            return
        invoice_id = self.pick(data)
        expected = self.invoices[invoice_id]
        refused = expected.void or amount > self.balance or amount > expected.open_amount
        assert self.customer_id is not None
        try:
            self.service.apply_credit_to_invoice(self.customer_id, invoice_id, amount)
        except ConflictError:
            assert refused
            return
        assert not refused
        expected.credited += amount
        self.balance -= amount

    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        if not self.invoices:
            return
        invoice_id = self.pick(data)
        expected = self.invoices[invoice_id]
        assert self.customer_id is not None
        version = self.service.get_invoice(self.customer_id, invoice_id).version
        try:
            self.service.void_invoice(self.customer_id, invoice_id, expected_version=version)
        except DomainError:
            assert expected.void or expected.paid or expected.credited
            return
        expected.void = True

    @invariant()
    def amounts_and_statuses_are_as_predicted(self) -> None:
        assert self.customer_id is not None
        for invoice_id, expected in self.invoices.items():
            invoice = self.service.get_invoice(self.customer_id, invoice_id)
            assert (invoice.paid, invoice.credited) == (expected.paid, expected.credited)
            assert invoice.open_amount == expected.open_amount >= 0
            assert invoice.paid >= 0 and invoice.status == expected.status

    @invariant()
    def the_credit_never_goes_below_zero(self) -> None:
        if self.customer_id is not None:
            balance = self.service.get_customer(self.customer_id).credit_balance
            assert balance == self.balance >= 0

    @invariant()
    def replaying_gives_the_live_state(self) -> None:
        for invoice_id in self.invoices:
            replayed: Any = None
            for event in self.service.events.get(invoice_id):
                replayed = event.mutate(replayed)  # type: ignore[attr-defined]
            live: Invoice = self.service.repository.get(invoice_id)
            assert replayed is not None and vars(replayed) == vars(live)


Settling.TestCase.settings = SETTINGS
TestSettling = Settling.TestCase
