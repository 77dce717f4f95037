"""The billing read model: invoices and payments as the customer's tabs show them, and the
price exception report.

An invoice row keeps its totals, what payments and credit settled, the open amount and
the status, guarded by the aggregate version so an event applied twice changes nothing.
A price exception row is an invoice line whose unit price differs from the list price
billing sent with it (this service has no catalogue: a line without a list price cannot
be an exception). The row keeps the customer's custom price for the service as it stood
when the invoice was issued, from the `Customer.CustomPriceSet` events the model follows
too (the log's order makes "as it stood" exact); the report also shows today's. A void
invoice's lines leave the report: nobody paid them.

On `Customer.Erased` the free texts go (line descriptions, payment references); numbers,
amounts, currencies and dates stay, as accounting law keeps them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from psycopg import Cursor, sql

from domain.customers import Customer
from domain.invoices import Invoice
from domain.payments import Payment
from projections.base import ReadModel
from projections.relinks import relink_row

__all__ = ["BillingModel", "price_exception_id"]

_WANTED = (
    Invoice.Issued,
    Invoice.PaymentApplied,
    Invoice.CreditApplied,
    Invoice.Voided,
    Payment.Recorded,
    Invoice.Relinked,
    Payment.Relinked,
    Customer.CustomPriceSet,
    Customer.Erased,
)


def price_exception_id(invoice_id: UUID, line_index: int) -> UUID:
    """The row id of an invoice's line in the report (stable across rebuilds)."""
    return uuid5(invoice_id, str(line_index))


class BillingModel(ReadModel):
    """Invoices, payments, custom prices and price exceptions."""

    name = "billing"

    def wants(self, event_class: type[Any]) -> bool:
        return issubclass(event_class, _WANTED)

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, Invoice.Issued):
            self._issued(cursor, event)
        elif isinstance(event, Invoice.PaymentApplied | Invoice.CreditApplied):
            column = "paid" if isinstance(event, Invoice.PaymentApplied) else "credited"
            self._settled(cursor, event, sql.Identifier(column))
        elif isinstance(event, Invoice.Voided):
            self._voided(cursor, event)
        elif isinstance(event, Payment.Recorded):
            self._payment(cursor, event)
        elif isinstance(event, Invoice.Relinked):  # a merge of its customer (or its undoing)
            relink_row(cursor, self.table("invoices"), event, versioned=True)
            cursor.execute(
                sql.SQL("UPDATE {} SET customer_id = %s WHERE invoice_id = %s").format(
                    self.table("price_exceptions")
                ),
                (event.customer_id, event.originator_id),
            )
        elif isinstance(event, Payment.Relinked):
            relink_row(cursor, self.table("payments"), event, versioned=False)
        elif isinstance(event, Customer.CustomPriceSet):
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (customer_id, service_id, price) VALUES (%s, %s, %s)"
                    " ON CONFLICT (customer_id, service_id) DO UPDATE SET price = EXCLUDED.price"
                ).format(self.table("custom_prices")),
                (event.originator_id, event.service_id, event.price),
            )
        elif isinstance(event, Customer.Erased):
            for table, column in (("payments", "reference"), ("price_exceptions", "description")):
                cursor.execute(
                    sql.SQL("UPDATE {} SET {} = NULL WHERE customer_id = %s").format(
                        self.table(table), sql.Identifier(column)
                    ),
                    (event.originator_id,),
                )

    def _issued(self, cursor: Cursor[Any], event: Invoice.Issued) -> None:
        zero = event.total - event.total  # 0 in the total's minor unit: "0.00"
        cursor.execute(
            sql.SQL(
                "INSERT INTO {} (id, customer_id, number, currency, total, paid, credited,"
                " open_amount, status, line_count, issued_at, due_at, updated_at, version)"
                " VALUES (%(id)s, %(customer_id)s, %(number)s, %(currency)s, %(total)s,"
                " %(zero)s, %(zero)s, %(open)s, %(status)s, %(lines)s, %(issued_at)s,"
                " %(due_at)s, %(at)s, %(version)s) ON CONFLICT (id) DO NOTHING"
            ).format(self.table("invoices")),
            {
                "id": event.originator_id,
                "customer_id": event.customer_id,
                "number": event.number,
                "currency": event.currency,
                "total": event.total,
                "zero": zero,
                "open": event.total if event.status != "paid" else zero,
                "status": event.status,
                "lines": len(event.lines),
                "issued_at": event.issued_at,
                "due_at": event.due_at,
                "at": event.timestamp,
                "version": event.originator_version,
            },
        )
        rows = [
            {
                "id": price_exception_id(event.originator_id, index),
                "index": index,
                "service_id": line.service_id,
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "list_price": line.list_price,
            }
            for index, line in enumerate(event.lines)
            if line.list_price is not None and line.unit_price != line.list_price
        ]
        if rows:
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {exceptions} (id, invoice_id, line_index, customer_id,"
                    " invoice_number, invoice_status, currency, service_id, description,"
                    " quantity, unit_price, list_price, custom_price_at_issue, issued_at)"
                    " VALUES (%(id)s, %(invoice_id)s, %(index)s, %(customer_id)s, %(number)s,"
                    " %(status)s, %(currency)s, %(service_id)s, %(description)s, %(quantity)s,"
                    " %(unit_price)s, %(list_price)s, (SELECT price FROM {prices}"
                    " WHERE customer_id = %(customer_id)s AND service_id = %(service_id)s),"
                    " %(issued_at)s) ON CONFLICT (id) DO NOTHING"
                ).format(
                    exceptions=self.table("price_exceptions"), prices=self.table("custom_prices")
                ),
                [
                    {
                        **row,
                        "invoice_id": event.originator_id,
                        "customer_id": event.customer_id,
                        "number": event.number,
                        "status": event.status,
                        "currency": event.currency,
                        "issued_at": event.issued_at,
                    }
                    for row in rows
                ],
            )

    def _settled(self, cursor: Cursor[Any], event: Any, column: sql.Identifier) -> None:
        cursor.execute(
            sql.SQL(
                "UPDATE {} SET {column} = {column} + %(amount)s,"
                " open_amount = open_amount - %(amount)s, status = %(status)s,"
                " updated_at = %(at)s, version = %(version)s"
                " WHERE id = %(id)s AND version < %(version)s"
            ).format(self.table("invoices"), column=column),
            {
                "id": event.originator_id,
                "amount": event.amount,
                "status": event.status,
                "at": event.timestamp,
                "version": event.originator_version,
            },
        )
        cursor.execute(
            sql.SQL("UPDATE {} SET invoice_status = %s WHERE invoice_id = %s").format(
                self.table("price_exceptions")
            ),
            (event.status, event.originator_id),
        )

    def _voided(self, cursor: Cursor[Any], event: Invoice.Voided) -> None:
        cursor.execute(
            sql.SQL(
                "UPDATE {} SET status = 'void', open_amount = open_amount - open_amount,"
                " updated_at = %(at)s, version = %(version)s"
                " WHERE id = %(id)s AND version < %(version)s"
            ).format(self.table("invoices")),
            {"id": event.originator_id, "at": event.timestamp, "version": event.originator_version},
        )
        cursor.execute(
            sql.SQL("DELETE FROM {} WHERE invoice_id = %s").format(self.table("price_exceptions")),
            (event.originator_id,),
        )

    def _payment(self, cursor: Cursor[Any], event: Payment.Recorded) -> None:
        cursor.execute(
            sql.SQL(
                "INSERT INTO {} (id, customer_id, number, kind, amount, currency, method,"
                " reference, invoice_id, invoice_number, paid_at, recorded_at) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
            ).format(self.table("payments")),
            (
                event.originator_id,
                event.customer_id,
                event.number,
                event.kind,
                event.amount,
                event.currency,
                event.method,
                event.reference,
                event.invoice_id,
                event.invoice_number,
                event.paid_at,
                event.timestamp,
            ),
        )
