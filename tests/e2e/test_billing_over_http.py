"""Invoices, payments and customer credit over HTTP on a real event store, with the billing
read model kept by a follower: the payment tabs, their refusals and who may do what."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]


@pytest.fixture(scope="module", autouse=True)
def billing_view(followed: Any) -> Iterator[None]:
    """The billing read model, kept current by a follower thread."""
    with followed("billing"):
        yield


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


def number(prefix: str = "INV") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def invoice_body(**given: Any) -> dict[str, Any]:
    return {
        "number": number(),
        "currency": "EUR",
        "issued_at": "2026-03-02T10:00:00+01:00",
        "due_at": "2026-03-16T10:00:00+01:00",
        "lines": [
            {"description": "Screen repair", "quantity": "1", "unit_price": "80.00",
             "service_id": "screen", "list_price": "100.00"},
            {"description": "Labour", "quantity": "2", "unit_price": "25.00"},
        ],
        **given,
    }  # fmt: skip


def payment_body(invoice_number: str | None, amount: str, **given: Any) -> dict[str, Any]:
    return {
        "number": number("PAY"),
        "amount": amount,
        "currency": "EUR",
        "method": "card",
        "paid_at": "2026-03-05T12:00:00Z",
        "invoice_number": invoice_number,
        **given,
    }


async def customer(client: Client, bearer: Bearer, registration: Any) -> str:
    response = await client.post("/v1/customers", json=registration(), headers=bearer())
    return str((await ok(response, 201))["id"])


async def record_invoice(client: Client, bearer: Bearer, customer_id: str, **given: Any) -> Any:
    body = invoice_body(**given)
    response = await client.post(
        f"/v1/customers/{customer_id}/invoices", json=body, headers=bearer("service")
    )
    recorded = await ok(response, 201)
    recorded["position"] = int(response.headers["X-Event-Position"])
    return recorded


async def pay(client: Client, bearer: Bearer, customer_id: str, body: dict[str, Any]) -> Any:
    return await client.post(
        f"/v1/customers/{customer_id}/payments", json=body, headers=bearer("service")
    )


async def invoices(client: Client, headers: dict[str, str], customer_id: str, position: int) -> Any:
    response = await client.get(
        f"/v1/customers/{customer_id}/invoices?min_position={position}", headers=headers
    )
    return (await ok(response))["items"]


async def test_an_invoice_is_recorded_once_by_its_number_and_listed_with_its_status(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """201 with totals and Location; the same again: the same answer, replayed; other
    content under the number: 409; the tab lists it open, the GET shows its lines."""
    customer_id = await customer(client, bearer, registration)
    body = invoice_body()
    url = f"/v1/customers/{customer_id}/invoices"
    first = await client.post(url, json=body, headers=bearer("service"))
    recorded = await ok(first, 201)
    assert recorded["total"] == "130.00" and recorded["open_amount"] == "130.00"
    assert recorded["status"] == "open" and first.headers["ETag"] == '"1"'
    assert first.headers["Location"] == f"{url}/{recorded['id']}"

    again = await client.post(url, json=body, headers=bearer("admin"))
    assert await ok(again, 201) == recorded
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = {**body, "lines": [{**body["lines"][0], "unit_price": "79.00"}]}
    refused = await problem(await client.post(url, json=changed, headers=bearer("service")), 409)
    assert fields(refused) == ["number"]

    position = int(again.headers["X-Event-Position"])
    [listed] = await invoices(client, bearer(), customer_id, position)
    assert listed["number"] == body["number"] and listed["status"] == "open"
    assert (listed["total"], listed["paid"], listed["open_amount"]) == ("130.00", "0.00", "130.00")
    assert listed["overdue"] is True and listed["line_count"] == 2
    shown = await client.get(f"{url}/{recorded['id']}", headers=bearer())
    assert shown.headers["ETag"] == '"1"'
    lines = (await ok(shown))["lines"]
    assert [(line["amount"], line["list_price"]) for line in lines] == [
        ("80.00", "100.00"),
        ("50.00", None),
    ]


async def test_refused_invoices_name_their_fields(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Floats, NaN, places beyond the currency's minor unit, unknown currencies, no lines,
    unknown fields and a due date before the issue: 422 naming each field."""
    customer_id = await customer(client, bearer, registration)
    url = f"/v1/customers/{customer_id}/invoices"
    line = {"description": "x", "quantity": "1", "unit_price": "1.00"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"lines": [{**line, "unit_price": 80.5}]}, "lines.0.unit_price"),
        ({"lines": [{**line, "unit_price": "NaN"}]}, "lines.0.unit_price"),
        ({"lines": [{**line, "quantity": 1.5}]}, "lines.0.quantity"),
        ({"lines": [{**line, "quantity": "0"}]}, "lines.0.quantity"),
        ({"lines": [{**line, "unit_price": "1.001"}]}, "lines.0.unit_price"),
        ({"currency": "JPY", "lines": [{**line, "unit_price": "100.50"}]}, "lines.0.unit_price"),
        ({"currency": "ZZZ"}, "currency"),
        ({"currency": "euro"}, "currency"),
        ({"lines": []}, "lines"),
        ({"lines": [{**line, "colour": "red"}]}, "lines.0.colour"),
        ({"lines": [{"quantity": "1", "unit_price": "1.00"}]}, "lines.0.description"),
        ({"due_at": "2026-03-01T00:00:00Z"}, "due_at"),
        ({"issued_at": "2026-03-01T00:00:00"}, "issued_at"),
        ({"number": ""}, "number"),
        ({"lines": [{**line, "quantity": "10000000"}]}, "lines.0.quantity"),
        ({"lines": [{**line, "unit_price": "1" + "0" * 15}]}, "lines.0.unit_price"),
    ]
    for given, field in cases:
        response = await client.post(url, json=invoice_body(**given), headers=bearer("service"))
        assert field in fields(await problem(response, 422)), (given, field)
    kwd = invoice_body(currency="KWD", lines=[{**line, "unit_price": "1.250"}])
    recorded = await ok(await client.post(url, json=kwd, headers=bearer("service")), 201)
    assert recorded["total"] == "1.250"


async def test_who_may_record_and_read_billing_records(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Staff read but do not record (403); a customer token reads its own tabs only (404
    for another's, and for recording); unknown customers are 404; a bad token 401."""
    mine, theirs = [await customer(client, bearer, registration) for _ in range(2)]
    recorded = await record_invoice(client, bearer, mine)
    own = bearer("customer", sub="portal", customer_id=mine)
    url = f"/v1/customers/{mine}/invoices"
    assert (await client.post(url, json=invoice_body(), headers=bearer("staff"))).status == 403
    await problem(await client.post(url, json=invoice_body(), headers=own), 404)
    staff_pays = await client.post(
        f"/v1/customers/{mine}/payments", json=payment_body(None, "1.00"), headers=bearer("staff")
    )
    await problem(staff_pays, 403)
    assert len(await invoices(client, own, mine, recorded["position"])) == 1
    await ok(await client.get(f"{url}/{recorded['id']}", headers=own))
    other = bearer("customer", sub="portal", customer_id=theirs)
    for path in ("invoices", "payments", f"invoices/{recorded['id']}"):
        await problem(await client.get(f"/v1/customers/{mine}/{path}", headers=other), 404)
    await problem(await client.get(f"/v1/customers/{theirs}/invoices/{recorded['id']}",
                                   headers=bearer()), 404)  # fmt: skip
    unknown = f"/v1/customers/{secrets.token_hex(16)}/invoices"
    await problem(await client.post(unknown, json=invoice_body(), headers=bearer("service")), 404)
    assert (await client.post(url, json=invoice_body())).status == 401


async def test_payments_move_the_invoice_and_fill_the_payment_history(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Part, then the rest: partially_paid then paid; more than open is 409 naming it; a
    refund reopens; a stale If-Match is 412; the history lists them newest first."""
    customer_id = await customer(client, bearer, registration)
    invoice = await record_invoice(client, bearer, customer_id, number=(n := number()))
    part = await ok(await pay(client, bearer, customer_id, payment_body(n, "30.00")), 201)
    assert part["invoice_status"] == "partially_paid" and part["invoice_id"] == invoice["id"]
    too_much = await problem(await pay(client, bearer, customer_id, payment_body(n, "100.01")), 409)
    assert fields(too_much) == ["amount"] and "100.00" in too_much["detail"]
    stale = await client.post(
        f"/v1/customers/{customer_id}/payments",
        json=payment_body(n, "1.00"),
        headers={**bearer("service"), "If-Match": '"1"'},
    )
    await problem(stale, 412)
    rest = payment_body(n, "100.00", paid_at="2026-03-06T12:00:00Z", method="bank_transfer")
    assert (await ok(await pay(client, bearer, customer_id, rest), 201))["invoice_status"] == "paid"
    resent = await pay(client, bearer, customer_id, rest)  # billing's retry: recorded once
    assert (await ok(resent, 201))["invoice_status"] == "paid"
    assert resent.headers["Idempotent-Replayed"] == "true"
    refund = payment_body(n, "20.00", kind="refund", paid_at="2026-03-07T12:00:00Z")
    refunded = await pay(client, bearer, customer_id, refund)
    assert (await ok(refunded, 201))["invoice_status"] == "partially_paid"
    position = int(refunded.headers["X-Event-Position"])

    [listed] = await invoices(client, bearer(), customer_id, position)
    assert (listed["status"], listed["paid"], listed["open_amount"]) == (
        "partially_paid",
        "110.00",
        "20.00",
    )
    response = await client.get(f"/v1/customers/{customer_id}/payments", headers=bearer())
    history = (await ok(response))["items"]
    assert [(p["kind"], p["amount"], p["method"]) for p in history] == [
        ("refund", "20.00", "card"),
        ("payment", "100.00", "bank_transfer"),
        ("payment", "30.00", "card"),
    ]
    on_account = await pay(client, bearer, customer_id, payment_body(None, "5.00"))
    assert (await ok(on_account, 201))["invoice_status"] is None


async def test_refused_payments(client: Client, bearer: Bearer, registration: Any) -> None:
    """Unknown invoice: 422; another currency: 409; a number reused for other content: 409;
    a float amount or an unknown method: 422."""
    customer_id = await customer(client, bearer, registration)
    await record_invoice(client, bearer, customer_id, number=(n := number()))
    unknown = await pay(client, bearer, customer_id, payment_body("NO-SUCH", "1.00"))
    assert fields(await problem(unknown, 422)) == ["invoice_number"]
    dollars = await pay(client, bearer, customer_id, payment_body(n, "1.00", currency="USD"))
    assert fields(await problem(dollars, 409)) == ["currency"]
    body = payment_body(n, "1.00")
    await ok(await pay(client, bearer, customer_id, body), 201)
    reused = await pay(client, bearer, customer_id, {**body, "amount": "2.00"})
    assert fields(await problem(reused, 409)) == ["number"]
    for given, field in (({"amount": 1.0}, "amount"), ({"method": "barter"}, "method")):
        refused = await pay(client, bearer, customer_id, {**payment_body(n, "1.00"), **given})
        assert fields(await problem(refused, 422)) == [field]


async def test_void_needs_if_match_and_an_unsettled_invoice(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Without If-Match 428, stale 412, staff 403, settled 409; then void, and no payment."""
    customer_id = await customer(client, bearer, registration)
    settled = await record_invoice(client, bearer, customer_id, number=(s := number()))
    await ok(await pay(client, bearer, customer_id, payment_body(s, "1.00")), 201)
    fresh = await record_invoice(client, bearer, customer_id, number=(f := number()))

    def void(invoice: dict[str, Any], headers: dict[str, str]) -> Any:
        url = f"/v1/customers/{customer_id}/invoices/{invoice['id']}/void"
        return client.post(url, headers=headers)

    await problem(await void(fresh, bearer("service")), 428)
    await problem(await void(fresh, {**bearer("service"), "If-Match": '"2"'}), 412)
    assert (await void(fresh, {**bearer("staff"), "If-Match": '"1"'})).status == 403
    refused = await problem(await void(settled, {**bearer("service"), "If-Match": '"2"'}), 409)
    assert "refund" in refused["detail"]
    voided = await ok(await void(fresh, {**bearer("service"), "If-Match": '"1"'}))
    assert (voided["status"], voided["open_amount"]) == ("void", "0.00")
    late = await pay(client, bearer, customer_id, payment_body(f, "1.00"))
    assert fields(await problem(late, 409)) == ["status"]


async def test_credit_applies_to_an_invoice_never_past_the_balance(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Credit 50: 40 applied (the customer lists the use, the invoice is partly paid);
    20 more: 409 naming 10.00 left; more than the open amount: 409; two at once for the
    last 10: one wins."""
    customer_id = await customer(client, bearer, registration)
    credited = await client.post(
        f"/v1/customers/{customer_id}/credits",
        json={"amount": "50.00", "reason": "referral"},
        headers=bearer(),
    )
    await ok(credited, 201)
    invoice = await record_invoice(client, bearer, customer_id)
    url = f"/v1/customers/{customer_id}/invoices/{invoice['id']}/apply-credit"
    used = await ok(await client.post(url, json={"amount": "40.00"}, headers=bearer()), 201)
    assert (used["credit_balance"], used["status"], used["open_amount"]) == (
        "10.00",
        "partially_paid",
        "90.00",
    )
    refused = await problem(await client.post(url, json={"amount": "20.00"}, headers=bearer()), 409)
    assert fields(refused) == ["amount"] and "10.00" in refused["detail"]
    await problem(await client.post(url, json={"amount": 10}, headers=bearer()), 422)
    await problem(
        await client.post(url, json={"amount": "1.00"}, headers={**bearer(), "If-Match": '"1"'}),
        412,
    )
    shown = await ok(await client.get(f"/v1/customers/{customer_id}", headers=bearer()))
    assert shown["credit_balance"] == "10.00"
    assert [c["amount"] for c in shown["credits"]] == ["50.00", "-40.00"]

    racing = await asyncio.gather(
        *(client.post(url, json={"amount": "10.00"}, headers=bearer()) for _ in range(2))
    )
    assert sorted(r.status for r in racing) == [201, 409]
    shown = await ok(await client.get(f"/v1/customers/{customer_id}", headers=bearer()))
    assert shown["credit_balance"] == "0.00"


async def test_a_retried_credit_use_spends_once(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """The same Idempotency-Key again: the first answer, one use; a KWD invoice takes no
    credit in fils (credit is kept in cents)."""
    customer_id = await customer(client, bearer, registration)
    body = {"amount": "30.00", "reason": "refund of a visit"}
    await ok(
        await client.post(f"/v1/customers/{customer_id}/credits", json=body, headers=bearer()), 201
    )
    invoice = await record_invoice(client, bearer, customer_id)
    url = f"/v1/customers/{customer_id}/invoices/{invoice['id']}/apply-credit"
    keyed = {**bearer(), "Idempotency-Key": f"use-{secrets.token_hex(4)}"}
    first = await ok(await client.post(url, json={"amount": "10.00"}, headers=keyed), 201)
    again = await client.post(url, json={"amount": "10.00"}, headers=keyed)
    assert await ok(again, 201) == first and again.headers["Idempotent-Replayed"] == "true"
    shown = await ok(await client.get(f"/v1/customers/{customer_id}", headers=bearer()))
    assert shown["credit_balance"] == "20.00"
    await problem(await client.post(url, json={"amount": "1.005"}, headers=bearer()), 422)


async def test_a_soft_deleted_customer_still_takes_billing_records_but_spends_no_credit(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Billing's facts do not wait for a restore; spending credit does (409 on deleted)."""
    customer_id = await customer(client, bearer, registration)
    url = f"/v1/customers/{customer_id}"
    credit = {"amount": "5.00", "reason": "goodwill"}
    await ok(await client.post(f"{url}/credits", json=credit, headers=bearer()), 201)
    await ok(await client.delete(url, headers={**bearer(), "If-Match": '"2"'}))
    invoice = await record_invoice(client, bearer, customer_id, number=(n := number()))
    await ok(await pay(client, bearer, customer_id, payment_body(n, "1.00")), 201)
    use = await client.post(
        f"{url}/invoices/{invoice['id']}/apply-credit", json={"amount": "1.00"}, headers=bearer()
    )
    assert fields(await problem(use, 409)) == ["deleted"]
