"""What invoices, payments and credit applied to invoices set in their customer's history.

Field names (the `field` of a change):

    invoices[<invoice_id>].number, .currency, .total, .issued_at, .due_at, .status
    invoices[<invoice_id>].paid         payments less refunds, after each one
    invoices[<invoice_id>].credited     customer credit applied, after each use
    payments[<payment_id>].number, .kind, .amount, .currency, .method, .paid_at,
                          .invoice_number, .reference
    credits[<credit_id>].amount, .reason    a use of credit: a negative amount

Money is a decimal string. An erasure nulls every value of the customer's earlier rows
(`history`), the references and invoice numbers with the rest.
"""

from __future__ import annotations

from decimal import Decimal

from domain.customers import Customer
from domain.invoices import Invoice
from domain.payments import Payment
from projections.history_fields import Fields, Recorders, as_json

__all__ = ["RECORDERS"]

RECORDERS = Recorders(personal=("payments[*].reference",))
"""What each billing event sets in the customer's history; a payment's reference is
personal (an erasure drops it from the earlier rows)."""


@RECORDERS(Invoice.Issued)
def _issued(event: Invoice.Issued, before: Fields) -> Fields:
    prefix = f"invoices[{event.originator_id}]."
    return {
        f"{prefix}number": event.number,
        f"{prefix}currency": event.currency,
        f"{prefix}total": as_json(event.total),
        f"{prefix}issued_at": as_json(event.issued_at),
        f"{prefix}due_at": as_json(event.due_at),
        f"{prefix}status": event.status,
    }


@RECORDERS(Invoice.PaymentApplied)
def _payment_applied(event: Invoice.PaymentApplied, before: Fields) -> Fields:
    return _settled(event, "paid", before)


@RECORDERS(Invoice.CreditApplied)
def _credit_applied(event: Invoice.CreditApplied, before: Fields) -> Fields:
    return _settled(event, "credited", before)


@RECORDERS(Invoice.Voided)
def _voided(event: Invoice.Voided, before: Fields) -> Fields:
    return {f"invoices[{event.originator_id}].status": "void"}


@RECORDERS(Payment.Recorded)
def _payment_recorded(event: Payment.Recorded, before: Fields) -> Fields:
    prefix = f"payments[{event.originator_id}]."
    return {
        f"{prefix}number": event.number,
        f"{prefix}kind": event.kind,
        f"{prefix}amount": as_json(event.amount),
        f"{prefix}currency": event.currency,
        f"{prefix}method": event.method,
        f"{prefix}paid_at": as_json(event.paid_at),
        f"{prefix}invoice_number": event.invoice_number,
        f"{prefix}reference": event.reference,
    }


@RECORDERS(Customer.CreditApplied)
def _credit_used(event: Customer.CreditApplied, before: Fields) -> Fields:
    prefix = f"credits[{event.credit_id}]."
    return {
        f"{prefix}amount": as_json(-event.amount),
        f"{prefix}reason": f"applied to invoice {event.invoice_number}",
    }


def _settled(
    event: Invoice.PaymentApplied | Invoice.CreditApplied, name: str, before: Fields
) -> Fields:
    prefix = f"invoices[{event.originator_id}]."
    # Before an erasure's reset the running sum is known; after one, it starts again.
    so_far = Decimal(before.get(f"{prefix}{name}") or "0")
    return {f"{prefix}{name}": as_json(so_far + event.amount), f"{prefix}status": event.status}
