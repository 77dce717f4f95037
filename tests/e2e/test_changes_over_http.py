"""Changing a customer over HTTP: profile patches, lifecycle, parts, and optimistic locking."""

from __future__ import annotations

import asyncio
from typing import Any

Client = Any


async def new_customer(client: Client, bearer: Any, registration: Any, **fields: Any) -> str:
    response = await client.post("/v1/customers", json=registration(**fields), headers=bearer())
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


def at(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


async def test_patch_changes_fields_and_null_clears_an_optional_one(
    client: Client, bearer: Any, registration: Any
) -> None:
    """PATCH merges the given fields, `null` clears an optional one, and ETag moves on."""
    cid = await new_customer(client, bearer, registration, company_name="Old Ltd")
    response = await client.patch(
        f"/v1/customers/{cid}",
        json={"company_name": None, "group": "vip", "assigned_staff_ids": ["s9"]},
        headers={**bearer(), **at(1)},
    )
    body = await response.json()
    assert response.status == 200
    assert response.headers["ETag"] == '"2"'
    assert body["company_name"] is None and body["group"] == "vip"
    assert body["assigned_staff_ids"] == ["s9"] and body["first_name"] == "Ada"


async def test_consent_change_is_recorded_with_channel_and_actor(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Withdrawing newsletter consent adds a consent record saying when, where and by whom."""
    cid = await new_customer(client, bearer, registration)
    await client.patch(
        f"/v1/customers/{cid}",
        json={"newsletter": False, "consent_channel": "in person"},
        headers={**bearer(sub="bob@shop"), **at(1)},
    )
    customer = await (await client.get(f"/v1/customers/{cid}", headers=bearer())).json()
    assert customer["newsletter"] is False
    last = customer["consents"][-1]
    assert (last["topic"], last["granted"], last["channel"], last["by"]) == (
        "newsletter",
        False,
        "in person",
        "bob@shop",
    )


async def test_a_released_email_can_be_taken_by_another_customer(
    client: Client, bearer: Any, registration: Any
) -> None:
    """After a customer changes email, another customer can register with the old one."""
    body = registration()
    cid = await new_customer(client, bearer, registration, email=body["email"])
    new_email = registration()["email"]
    changed = await client.patch(
        f"/v1/customers/{cid}", json={"email": new_email}, headers={**bearer(), **at(1)}
    )
    assert changed.status == 200
    again = await client.post(
        "/v1/customers", json=registration(email=body["email"]), headers=bearer()
    )
    assert again.status == 201
    taken = await client.patch(
        f"/v1/customers/{cid}", json={"email": body["email"]}, headers={**bearer(), **at(2)}
    )
    assert taken.status == 409


async def test_two_writers_with_the_same_version_one_gets_412(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Two PATCHes sent with the same If-Match: one applies, the other gets 412, nothing lost."""
    cid = await new_customer(client, bearer, registration)
    responses = await asyncio.gather(
        client.patch(f"/v1/customers/{cid}", json={"group": "a"}, headers={**bearer(), **at(1)}),
        client.patch(f"/v1/customers/{cid}", json={"store": "b"}, headers={**bearer(), **at(1)}),
    )
    assert sorted(r.status for r in responses) == [200, 412]
    customer = await (await client.get(f"/v1/customers/{cid}", headers=bearer())).json()
    assert customer["version"] == 2
    assert (customer["group"], customer["store"]) in {("a", None), (None, "b")}


async def test_delete_hides_nothing_from_get_and_restore_undoes_it(
    client: Client, bearer: Any, registration: Any
) -> None:
    """A soft-deleted customer still reads with deleted=true, refuses changes, and restores."""
    cid = await new_customer(client, bearer, registration)
    deleted = await client.delete(f"/v1/customers/{cid}", headers={**bearer(), **at(1)})
    assert deleted.status == 200 and deleted.headers["ETag"] == '"2"'
    customer = await (await client.get(f"/v1/customers/{cid}", headers=bearer())).json()
    assert customer["deleted"] is True
    refused = await client.post(f"/v1/customers/{cid}/notes", json={"text": "x"}, headers=bearer())
    assert refused.status == 409
    restored = await client.post(f"/v1/customers/{cid}/restore", headers={**bearer(), **at(2)})
    assert restored.status == 200
    customer = await (await client.get(f"/v1/customers/{cid}", headers=bearer())).json()
    assert customer["deleted"] is False and customer["version"] == 3


async def test_block_and_unblock_with_a_reason(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Block records the reason; blocking twice is 409; unblock clears it."""
    cid = await new_customer(client, bearer, registration)
    url = f"/v1/customers/{cid}"
    blocked = await client.post(
        f"{url}/block", json={"reason": "unpaid"}, headers={**bearer(), **at(1)}
    )
    assert blocked.status == 200
    again = await client.post(f"{url}/block", json={}, headers={**bearer(), **at(2)})
    assert again.status == 409
    customer = await (await client.get(url, headers=bearer())).json()
    assert customer["blocked"] is True and customer["block_reason"] == "unpaid"
    assert (await client.post(f"{url}/unblock", headers={**bearer(), **at(2)})).status == 200
    customer = await (await client.get(url, headers=bearer())).json()
    assert customer["blocked"] is False and customer["block_reason"] is None


async def test_notes_list_urgent_first_and_can_be_removed(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Urgent notes list first; a removed note is gone; Location names the new note."""
    cid = await new_customer(client, bearer, registration)
    url = f"/v1/customers/{cid}"
    plain = await client.post(f"{url}/notes", json={"text": "likes tea"}, headers=bearer())
    urgent = await client.post(
        f"{url}/notes", json={"text": "dog bites", "urgent": True}, headers=bearer()
    )
    assert plain.status == urgent.status == 201
    note_id = (await plain.json())["note_id"]
    assert plain.headers["Location"] == f"{url}/notes/{note_id}"
    customer = await (await client.get(url, headers=bearer())).json()
    assert [n["text"] for n in customer["notes"]] == ["dog bites", "likes tea"]
    removed = await client.delete(f"{url}/notes/{note_id}", headers={**bearer(), **at(3)})
    assert removed.status == 200
    customer = await (await client.get(url, headers=bearer())).json()
    assert [n["text"] for n in customer["notes"]] == ["dog bites"]


async def test_contacts_addresses_keys_prices_and_credits(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Each part of the record is added through its endpoint and shows on GET."""
    cid = await new_customer(client, bearer, registration)
    url = f"/v1/customers/{cid}"
    h = bearer()
    contact = await client.post(
        f"{url}/contacts",
        headers=h,
        json={
            "name": "Site manager",
            "role": "facilities",
            "email": "FM@Site.org",
            "phone": "415 555 2671",
        },
    )
    address = await client.post(
        f"{url}/addresses",
        headers=h,
        json={"kind": "site", "line1": "9 Dock Rd", "city": "Oakland", "postal_code": "94607"},
    )
    keys = await client.put(
        f"{url}/keys", headers=h, json={"holder_staff_id": "s7", "location": "key safe 3"}
    )
    price = await client.put(f"{url}/prices/svc-oil-change", headers=h, json={"price": "49.90"})
    credit = await client.post(
        f"{url}/credits", headers=h, json={"amount": "15.00", "reason": "late technician"}
    )
    assert [r.status for r in (contact, address, keys, price, credit)] == [201, 201, 200, 200, 201]
    customer = await (await client.get(url, headers=h)).json()
    assert customer["contacts"][0]["email"] == "FM@site.org"
    assert customer["contacts"][0]["phone"] == "+14155552671"
    assert customer["addresses"][0]["postal_code"] == "94607"
    assert customer["key_custody"]["location"] == "key safe 3"
    assert customer["custom_prices"] == {"svc-oil-change": "49.90"}
    assert customer["credit_balance"] == "15.00"


async def test_system_secret_is_write_only_and_sealed_in_the_event_store(
    client: Client, bearer: Any, registration: Any, service: Any
) -> None:
    """A system's secret never comes back, is masked in the audit stream and stored encrypted."""
    cid = await new_customer(client, bearer, registration)
    url = f"/v1/customers/{cid}"
    secret = "hunter2-very-secret"
    added = await client.post(
        f"{url}/systems",
        headers=bearer(),
        json={"system_type": "alarm", "ip_address": "10.0.0.7", "login": "admin", "secret": secret},
    )
    system_id = (await added.json())["system_id"]
    changed = await client.patch(
        f"{url}/systems/{system_id}", json={"version": "2.1"}, headers={**bearer(), **at(2)}
    )
    assert changed.status == 200
    customer_text = await (await client.get(url, headers=bearer())).text()
    events_text = await (await client.get(f"{url}/events", headers=bearer("admin"))).text()
    assert secret not in customer_text and secret not in events_text
    assert '"has_secret":true' in customer_text and '"version":"2.1"' in customer_text
    with service.recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            f"SELECT state FROM {service.recorder.datastore.schema}.crm_events"
            " WHERE originator_id = %s",
            (cid,),
        )
        stored = b"".join(bytes(row["state"]) for row in cursor.fetchall())
    assert secret.encode() not in stored
    customer_id = __import__("uuid").UUID(cid)
    sealed = service.get_customer(customer_id).systems
    assert [service.unseal_secret(customer_id, s.sealed_secret) for s in sealed.values()] == [
        secret
    ]


async def test_event_stream_pages_with_actor_correlation_and_positions(
    client: Client, bearer: Any, registration: Any
) -> None:
    """GET /events lists the stream in order with actor, correlation id and global positions."""
    cid = await new_customer(client, bearer, registration)
    url = f"/v1/customers/{cid}"
    for text in ("one", "two", "three"):
        await client.post(
            f"{url}/notes",
            json={"text": text},
            headers={**bearer(sub="carol"), "X-Request-ID": f"req-{text}"},
        )
    page = await (
        await client.get(f"{url}/events", params={"limit": "2"}, headers=bearer("admin"))
    ).json()
    assert [e["type"] for e in page["items"]] == ["customer.registered", "customer.note_added"]
    assert page["items"][1]["actor"] == "carol"
    assert page["items"][1]["correlation_id"] == "req-one"
    rest = await (
        await client.get(
            f"{url}/events", params={"cursor": page["next_cursor"]}, headers=bearer("admin")
        )
    ).json()
    assert [e["payload"]["text"] for e in rest["items"]] == ["two", "three"]
    assert rest["next_cursor"] is None
    positions = [e["position"] for e in page["items"] + rest["items"]]
    assert positions == sorted(positions) and len(set(positions)) == 4
