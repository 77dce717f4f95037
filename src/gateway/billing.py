"""Invoices and payments (the customer's payment tab) and the price exception report.

Who may do what:
- The billing service (role `service`) and admins record invoices and payments and void
  invoices: they are billing's records, so a staff token may read them but not write
  them (403). A resend of the same number and content answers 201 again, the same body,
  with `Idempotent-Replayed: true`; other content under a known number is 409.
- Staff, admins and the service apply customer credit to an invoice (the payment tab's
  "use credit").
- A customer token reads its own customer's invoices and payments (the portal), and
  nothing of another's (404); the price exception report is for staff and admins only.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from domain.invoices import Invoice
from domain.timezones import DEFAULT_TIME_ZONE
from gateway.auth import EVERYONE, Role, requires
from gateway.billing_schemas import (
    CreditUseIn,
    CreditUseOut,
    InvoiceIn,
    InvoiceOut,
    InvoicePage,
    InvoiceRecordedOut,
    InvoicesQuery,
    PaymentIn,
    PaymentPage,
    PaymentRecordedOut,
    PaymentsQuery,
    PriceExceptionPage,
    PriceExceptionsQuery,
)
from gateway.commands import CHANGED_HEADERS, CREATED_HEADERS, answer
from gateway.keys import SETTINGS_KEY
from gateway.listing import fetch_page
from gateway.operations import operation
from gateway.requests import (
    etag,
    json_response,
    optional_if_match,
    parse_query,
    read_json,
)
from gateway.tabs import Tab, tab_customer
from projections.billing_queries import (
    BillingCriteria,
    invoices_statement,
    payments_statement,
    price_exceptions_statement,
)

__all__ = ["add_routes"]

BILLING: tuple[Role, ...] = ("admin", "service")
"""Who records billing's records."""
CREDIT: tuple[Role, ...] = ("admin", "staff", "service")
REPORT: tuple[Role, ...] = ("admin", "staff")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/customers/{id}/invoices", record_invoice)
    r.add_get("/v1/customers/{id}/invoices", list_invoices)
    r.add_get("/v1/customers/{id}/invoices/{invoice_id}", get_invoice)
    r.add_post("/v1/customers/{id}/invoices/{invoice_id}/void", void_invoice)
    r.add_post("/v1/customers/{id}/invoices/{invoice_id}/apply-credit", apply_credit)
    r.add_post("/v1/customers/{id}/payments", record_payment)
    r.add_get("/v1/customers/{id}/payments", list_payments)
    r.add_get("/v1/reports/price-exceptions", price_exceptions)


# ---- commands ----------------------------------------------------------------------------


@operation(
    "Record an invoice from billing",
    tag="billing",
    description="Keyed by billing's number: the same content again answers the same;"
    " other content under the number is 409. Amounts in the currency's minor unit.",
    request=InvoiceIn,
    responses={201: InvoiceRecordedOut},
    response_headers=CREATED_HEADERS,
    errors=(404, 409),
)
@requires(*BILLING)
async def record_invoice(request: web.Request) -> web.Response:
    tab = Tab.of(request)
    body = await read_json(request, InvoiceIn)
    receipt = await tab.run(
        "record_invoice",
        body.number,
        body.currency,
        [line.model_dump(exclude_none=True) for line in body.lines],
        body.issued_at,
        body.due_at,
    )
    return tab.created(receipt, f"invoices/{receipt.aggregate_id}", InvoiceRecordedOut)


@operation(
    "Record a payment or refund from billing",
    tag="billing",
    description="Keyed by billing's number like an invoice. Naming an invoice moves its"
    " status; more than its open amount (or a refund of more than was paid) is 409."
    " If-Match, when sent, is the invoice's version.",
    request=PaymentIn,
    responses={201: PaymentRecordedOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
    errors=(404, 409),
)
@requires(*BILLING)
async def record_payment(request: web.Request) -> web.Response:
    tab = Tab.of(request)
    expected = optional_if_match(request)  # the invoice's version, not the customer's
    body = await read_json(request, PaymentIn)
    receipt = await tab.run(
        "record_payment",
        body.number,
        kind=body.kind,
        amount=body.amount,
        currency=body.currency,
        method=body.method,
        paid_at=body.paid_at,
        reference=body.reference,
        invoice_number=body.invoice_number,
        expected_invoice_version=expected,
    )
    return answer(receipt, PaymentRecordedOut, status=201)


@operation(
    "Void an invoice nothing has settled",
    tag="billing",
    responses={200: InvoiceRecordedOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(404, 409),
)
@requires(*BILLING)
async def void_invoice(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="invoice_id", if_match="required")
    return answer(await tab.run("void_invoice"), InvoiceRecordedOut)


@operation(
    "Apply customer credit to an invoice",
    tag="billing",
    description="At most the customer's available credit (409 naming it) and the invoice's"
    " open amount (409 naming it). If-Match, when sent, is the invoice's version.",
    request=CreditUseIn,
    responses={201: CreditUseOut},
    if_match="optional",
    response_headers=CHANGED_HEADERS,
    errors=(404, 409),
)
@requires(*CREDIT)
async def apply_credit(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="invoice_id", if_match="optional")
    body = await read_json(request, CreditUseIn)
    receipt = await tab.run("apply_credit_to_invoice", body.amount)
    return answer(receipt, CreditUseOut, status=201)


# ---- reads -------------------------------------------------------------------------------


@operation(
    "Get an invoice with its lines (event store)",
    tag="billing",
    responses={200: InvoiceOut},
    response_headers=("ETag",),
)
@requires(*EVERYONE)
async def get_invoice(request: web.Request) -> web.Response:
    invoice = await Tab.of(request, part="invoice_id").get("get_invoice")
    return json_response(_invoice_out(invoice), headers={"ETag": etag(invoice.version)})


@operation(
    "A customer's invoices with their status (read model)",
    tag="billing",
    description="Newest issued first. A customer token reads only its own.",
    query=InvoicesQuery,
    responses={200: InvoicePage},
)
@requires(*EVERYONE)
async def list_invoices(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, InvoicesQuery)
    criteria = BillingCriteria(customer_id=customer_id, statuses=tuple(query.status or ()))
    rows, cursor = await fetch_page(
        request, "billing", invoices_statement, criteria, query, key_column="issued_at"
    )
    now = datetime.now(UTC)
    items = [{**row, "overdue": _overdue(row, now)} for row in rows]
    return json_response(InvoicePage.model_validate({"items": items, "next_cursor": cursor}))


@operation(
    "A customer's payments and refunds (read model)",
    tag="billing",
    description="Newest paid first: the payment history tab. A customer token reads only its own.",
    query=PaymentsQuery,
    responses={200: PaymentPage},
)
@requires(*EVERYONE)
async def list_payments(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, PaymentsQuery)
    rows, cursor = await fetch_page(
        request,
        "billing",
        payments_statement,
        BillingCriteria(customer_id=customer_id),
        query,
        key_column="paid_at",
    )
    return json_response(PaymentPage.model_validate({"items": rows, "next_cursor": cursor}))


@operation(
    "Price exception report (read model)",
    tag="billing",
    description="Invoice lines charged at a price other than the list price billing sent,"
    " newest first, with the customer's custom price for the service then and now. Void"
    " invoices are left out; `from`/`to` are days in the business time zone.",
    query=PriceExceptionsQuery,
    responses={200: PriceExceptionPage},
)
@requires(*REPORT)
async def price_exceptions(request: web.Request) -> web.Response:
    query = parse_query(request, PriceExceptionsQuery)
    zone = ZoneInfo(getattr(request.app[SETTINGS_KEY], "business_time_zone", DEFAULT_TIME_ZONE))
    criteria = BillingCriteria(
        customer_id=query.customer_id,
        service_id=query.service_id,
        issued_from=datetime.combine(query.from_, time(), zone) if query.from_ else None,
        issued_before=(
            datetime.combine(query.to + timedelta(days=1), time(), zone) if query.to else None
        ),
    )
    rows, cursor = await fetch_page(
        request, "billing", price_exceptions_statement, criteria, query, key_column="issued_at"
    )
    items = [
        {
            **row,
            "difference": row["unit_price"] - row["list_price"],
            "matches_custom_price": (
                None
                if row["custom_price_at_issue"] is None
                else row["unit_price"] == row["custom_price_at_issue"]
            ),
        }
        for row in rows
    ]
    return json_response(PriceExceptionPage.model_validate({"items": items, "next_cursor": cursor}))


# ---- helpers -----------------------------------------------------------------------------


def _overdue(row: dict[str, Any], now: datetime) -> bool:
    due: datetime | None = row["due_at"]
    return due is not None and due < now and row["status"] in ("open", "partially_paid")


def _invoice_out(invoice: Invoice) -> InvoiceOut:
    return InvoiceOut.model_validate(
        {
            "id": invoice.id,
            "customer_id": invoice.customer_id,
            "number": invoice.number,
            "currency": invoice.currency,
            "lines": [vars(line) for line in invoice.lines],
            "total": invoice.total,
            "paid": invoice.paid,
            "credited": invoice.credited,
            "open_amount": invoice.open_amount,
            "status": invoice.status,
            "issued_at": invoice.issued_at,
            "due_at": invoice.due_at,
            "version": invoice.version,
        }
    )
