"""The price exception report over HTTP, and billing records through erasure and history.

The report's rows come from invoices billing sends (lines whose unit price is not the
list price sent with them) and from the customers' custom prices (`PUT .../prices/...`),
both followed by the billing read model. Each test uses service ids of its own, so the
rows other tests make never reach its filters.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem
from tests.e2e.test_erasure_everywhere import database_hits

from domain.service import CustomerService
from infrastructure.settings import Settings

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
REPORT = "/v1/reports/price-exceptions"


@pytest.fixture(scope="module", autouse=True)
def views(followed: Any) -> Iterator[None]:
    """The billing and history read models, kept current by follower threads."""
    with followed("billing"), followed("history"):
        yield


def line(service_id: str, unit_price: str, list_price: str | None, **given: Any) -> Any:
    return {
        "description": f"{service_id} work",
        "quantity": "1",
        "unit_price": unit_price,
        "service_id": service_id,
        "list_price": list_price,
        **given,
    }


async def customer(client: Client, bearer: Bearer, registration: Any, **given: Any) -> str:
    response = await client.post("/v1/customers", json=registration(**given), headers=bearer())
    return str((await ok(response, 201))["id"])


async def set_price(
    client: Client, bearer: Bearer, customer_id: str, service: str, price: str
) -> None:
    url = f"/v1/customers/{customer_id}/prices/{service}"
    await ok(await client.put(url, json={"price": price}, headers=bearer()))


async def invoice(
    client: Client, bearer: Bearer, customer_id: str, issued_at: str, lines: list[Any]
) -> tuple[dict[str, Any], int]:
    body = {
        "number": f"INV-{secrets.token_hex(5)}",
        "currency": "EUR",
        "issued_at": issued_at,
        "lines": lines,
    }
    url = f"/v1/customers/{customer_id}/invoices"
    response = await client.post(url, json=body, headers=bearer("service"))
    return await ok(response, 201), int(response.headers["X-Event-Position"])


async def report(client: Client, bearer: Bearer, position: int, **query: str) -> Any:
    params = {"min_position": str(position), **query}
    return await ok(await client.get(REPORT, params=params, headers=bearer()))


async def test_the_report_lists_lines_off_the_list_price_with_the_custom_prices(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Only lines whose unit price differs from their list price; the custom price then
    (and whether it was charged) and now; filters by customer, service and day; pages."""
    tag = secrets.token_hex(3)
    screen, battery, labour = f"screen-{tag}", f"battery-{tag}", f"labour-{tag}"
    ann, bob = [await customer(client, bearer, registration) for _ in range(2)]
    await set_price(client, bearer, ann, screen, "85.00")
    # Ann: the agreed price, a list-price line and a line with no list price (no exception).
    await invoice(client, bearer, ann, "2026-03-02T10:00:00Z", [
        line(screen, "85.00", "100.00"), line(labour, "25.00", "25.00"), line(labour, "9.00", None),
    ])  # fmt: skip
    await set_price(client, bearer, ann, screen, "80.00")  # agreed later: shown as today's
    # Bob: no custom price; one line below and one above the list price.
    bob_invoice, position = await invoice(client, bearer, bob, "2026-02-10T10:00:00Z", [
        line(screen, "90.00", "100.00"), line(battery, "30.00", "25.00"),
    ])  # fmt: skip

    rows = (await report(client, bearer, position, service_id=screen))["items"]
    assert [(r["customer_id"], r["unit_price"], r["list_price"]) for r in rows] == [
        (ann, "85.00", "100.00"),
        (bob, "90.00", "100.00"),
    ]
    ann_row, bob_row = rows
    assert (ann_row["custom_price_at_issue"], ann_row["custom_price"]) == ("85.00", "80.00")
    assert ann_row["matches_custom_price"] is True and ann_row["difference"] == "-15.00"
    assert ann_row["description"] == f"{screen} work" and ann_row["invoice_status"] == "open"
    assert bob_row["custom_price_at_issue"] is None and bob_row["matches_custom_price"] is None
    assert bob_row["invoice_number"] == bob_invoice["number"] and bob_row["line_index"] == 0

    battery_rows = (await report(client, bearer, position, service_id=battery))["items"]
    assert [(r["unit_price"], r["difference"]) for r in battery_rows] == [("30.00", "5.00")]
    assert (await report(client, bearer, position, service_id=labour))["items"] == []
    by_customer = await report(client, bearer, position, customer_id=bob)
    assert {r["service_id"] for r in by_customer["items"]} == {screen, battery}
    march = await report(client, bearer, position, service_id=screen, **{"from": "2026-03-01"})
    assert [r["customer_id"] for r in march["items"]] == [ann]
    february = await report(client, bearer, position, service_id=screen, to="2026-02-10")
    assert [r["customer_id"] for r in february["items"]] == [bob]

    first = await report(client, bearer, position, service_id=screen, limit="1")
    assert [r["customer_id"] for r in first["items"]] == [ann] and first["next_cursor"]
    second = await report(
        client, bearer, position, service_id=screen, limit="1", cursor=first["next_cursor"]
    )
    assert [r["customer_id"] for r in second["items"]] == [bob]
    assert second["next_cursor"] is None


async def test_a_void_invoice_leaves_the_report_and_payments_follow_its_status(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """A paid invoice's rows say paid; a voided one's rows are gone."""
    service = f"tyre-{secrets.token_hex(3)}"
    ann = await customer(client, bearer, registration)
    paid, _ = await invoice(
        client, bearer, ann, "2026-03-03T10:00:00Z", [line(service, "50.00", "60.00")]
    )
    voided, _ = await invoice(
        client, bearer, ann, "2026-03-04T10:00:00Z", [line(service, "55.00", "60.00")]
    )
    payment = {
        "number": f"PAY-{secrets.token_hex(5)}",
        "amount": "50.00",
        "currency": "EUR",
        "method": "cash",
        "paid_at": "2026-03-05T10:00:00Z",
        "invoice_number": paid["number"],
    }
    url = f"/v1/customers/{ann}"
    await ok(await client.post(f"{url}/payments", json=payment, headers=bearer("service")), 201)
    response = await client.post(
        f"{url}/invoices/{voided['id']}/void", headers={**bearer("service"), "If-Match": '"1"'}
    )
    await ok(response)
    rows = (await report(client, bearer, int(response.headers["X-Event-Position"]),
                         service_id=service))["items"]  # fmt: skip
    assert [(r["invoice_number"], r["invoice_status"]) for r in rows] == [(paid["number"], "paid")]


async def test_the_report_is_for_staff_and_checks_its_query(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """A customer token: 404; the service role: 403; bad dates, cursors, fields: 422."""
    ann = await customer(client, bearer, registration)
    assert (await client.get(REPORT, headers=bearer("customer", customer_id=ann))).status == 404
    assert (await client.get(REPORT, headers=bearer("service"))).status == 403
    for query, field in (
        ({"from": "March"}, "from"),
        ({"cursor": "not-ours"}, "cursor"),
        ({"customer_id": "x"}, "customer_id"),
        ({"colour": "red"}, "colour"),
    ):
        body = await problem(await client.get(REPORT, params=query, headers=bearer()), 422)
        assert field in [e["field"] for e in body["errors"]], query


async def test_an_erasure_keeps_the_amounts_and_drops_the_free_texts(
    client: Client,
    bearer: Bearer,
    registration: Any,
    service: CustomerService,
    api_settings: Settings,
) -> None:
    """Line descriptions and payment references that name the customer are found in the
    read models before the erasure and nowhere after; numbers, amounts and history stay."""
    tag = secrets.token_hex(4)
    name = f"Quentin{tag}"
    ann = await customer(client, bearer, registration, last_name=name)
    service_id = f"screen-{tag}"
    recorded, _ = await invoice(client, bearer, ann, "2026-03-02T10:00:00Z", [
        line(service_id, "80.00", "100.00", description=f"Screen for {name}'s phone"),
    ])  # fmt: skip
    payment = {
        "number": f"PAY-{tag}",
        "amount": "80.00",
        "currency": "EUR",
        "method": "bank_transfer",
        "paid_at": "2026-03-05T10:00:00Z",
        "invoice_number": recorded["number"],
        "reference": f"Transfer from {name}",
    }
    paid = await client.post(
        f"/v1/customers/{ann}/payments", json=payment, headers=bearer("service")
    )
    await ok(paid, 201)
    position = int(paid.headers["X-Event-Position"])
    history = await client.get(
        f"/v1/customers/{ann}/history?min_position={position}", headers=bearer()
    )
    changed = {c["field"] for row in (await ok(history))["items"] for c in row["changes"]}
    assert f"invoices[{recorded['id']}].status" in changed
    assert any(f.endswith(".reference") and f.startswith("payments[") for f in changed)

    wanted = [name.lower().encode()]
    await report(client, bearer, position, service_id=service_id)
    before = database_hits(service, api_settings.db_schema, wanted)
    schema = api_settings.db_schema
    expected = {
        f"{schema}_billing.price_exceptions.description",
        f"{schema}_billing.payments.reference",
    }
    assert expected <= set(before), before

    version = (await ok(await client.get(f"/v1/customers/{ann}", headers=bearer())))["version"]
    erased = await client.post(
        f"/v1/customers/{ann}/erase", headers={**bearer("admin"), "If-Match": f'"{version}"'}
    )
    await ok(erased)
    after_position = int(erased.headers["X-Event-Position"])
    [row] = (await report(client, bearer, after_position, service_id=service_id))["items"]
    await ok(
        await client.get(
            f"/v1/customers/{ann}/history?min_position={after_position}", headers=bearer()
        )
    )
    assert database_hits(service, schema, wanted) == {}
    assert (row["description"], row["unit_price"], row["invoice_number"]) == (
        None,
        "80.00",
        recorded["number"],
    )
    [kept] = (await ok(await client.get(f"/v1/customers/{ann}/payments", headers=bearer())))[
        "items"
    ]
    assert (kept["reference"], kept["amount"], kept["number"]) == (None, "80.00", f"PAY-{tag}")
    shown = await ok(
        await client.get(f"/v1/customers/{ann}/invoices/{recorded['id']}", headers=bearer())
    )
    assert shown["lines"][0]["description"] is None and shown["status"] == "paid"
    late = {
        "number": f"INV-{tag}",
        "currency": "EUR",
        "issued_at": "2026-03-09T10:00:00Z",
        "lines": [line(service_id, "1.00", None)],
    }
    refused = await client.post(
        f"/v1/customers/{ann}/invoices", json=late, headers=bearer("service")
    )
    assert (await problem(refused, 409))["errors"][0]["field"] == "erased"


async def test_the_history_shows_each_step_of_an_invoice_and_the_credit_used(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """Issued, paid in part, credit used, paid: field by field, with the running sums."""
    ann = await customer(client, bearer, registration)
    url = f"/v1/customers/{ann}"
    credit = {"amount": "20.00", "reason": "referral"}
    await ok(await client.post(f"{url}/credits", json=credit, headers=bearer()), 201)
    recorded, _ = await invoice(client, bearer, ann, "2026-03-02T10:00:00Z", [
        line("visit", "100.00", None),
    ])  # fmt: skip
    payment = {
        "number": f"PAY-{secrets.token_hex(5)}",
        "amount": "30.00",
        "currency": "EUR",
        "method": "cash",
        "paid_at": "2026-03-03T10:00:00Z",
        "invoice_number": recorded["number"],
    }
    paid = await client.post(f"{url}/payments", json=payment, headers=bearer("service"))
    payment_id = (await ok(paid, 201))["id"]
    used = await client.post(
        f"{url}/invoices/{recorded['id']}/apply-credit", json={"amount": "20.00"}, headers=bearer()
    )
    credit_id = (await ok(used, 201))["credit_id"]
    position = used.headers["X-Event-Position"]
    history = await client.get(f"{url}/history?min_position={position}", headers=bearer())
    rows = (await ok(history))["items"]
    changes = {
        row["type"]: {c["field"]: (c["from"], c["to"]) for c in row["changes"]} for row in rows
    }
    invoice_field = f"invoices[{recorded['id']}]"
    assert changes["invoice.issued"][f"{invoice_field}.total"] == (None, "100.00")
    assert changes["invoice.payment_applied"] == {
        f"{invoice_field}.paid": (None, "30.00"),
        f"{invoice_field}.status": ("open", "partially_paid"),
    }
    assert changes["invoice.credit_applied"][f"{invoice_field}.credited"] == (None, "20.00")
    assert changes["customer.credit_applied"][f"credits[{credit_id}].amount"] == (None, "-20.00")
    recorded_payment = changes["payment.recorded"]
    assert recorded_payment[f"payments[{payment_id}].method"] == (None, "cash")
    assert recorded_payment[f"payments[{payment_id}].amount"] == (None, "30.00")
