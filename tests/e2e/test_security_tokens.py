"""Attacks on authentication and authorisation, against the real gateway and event store.

Forged tokens (expired, wrongly signed, unsigned, without `exp`, other algorithms, made-up
roles) answer 401; a customer's token answers 404 on every staff operation the OpenAPI
document declares (read from the served document, so new operations are covered); and a
customer cannot raise its privileges through the fields of its own record.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt
import pytest
from aiohttp.test_utils import TestClient
from jwt.warnings import InsecureKeyLengthWarning

from gateway.schemas import CustomerPatch
from gateway.scopes import SELF_SERVICE_FIELDS
from infrastructure.settings import Settings

Client = TestClient[Any, Any]


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": "mallory", "role": "admin", "exp": now + timedelta(hours=1)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def forged_tokens(secret: str) -> dict[str, str]:
    """A token for each way of getting one wrong, all claiming the admin role."""
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    unsigned_claims = {"sub": "mallory", "role": "admin", "exp": 4102444800}
    _, payload, signature = jwt.encode(_claims(), secret, algorithm="HS256").split(".")
    return {
        "expired": jwt.encode(_claims(exp=long_ago), secret, algorithm="HS256"),
        "wrong signature": jwt.encode(_claims(), secrets.token_urlsafe(32), algorithm="HS256"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(unsigned_claims)}.",
        "alg None, signature kept": f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{payload}.{signature}",
        "no exp": jwt.encode(_claims(exp=None), secret, algorithm="HS256"),
        "no sub": jwt.encode(_claims(sub=None), secret, algorithm="HS256"),
        "HS512 with the same secret": _hs512(secret),
        "made-up role": jwt.encode(_claims(role="root"), secret, algorithm="HS256"),
        "customer without customer_id": jwt.encode(_claims(role="customer"), secret),
        "not yet valid": jwt.encode(
            _claims(nbf=datetime.now(UTC) + timedelta(hours=1)), secret, algorithm="HS256"
        ),
        "garbage": "not.a.token",
    }


def _hs512(secret: str) -> str:
    with warnings.catch_warnings():
        # PyJWT finds a 32-byte key short for HS512; the gateway must refuse it anyway.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(_claims(), secret, algorithm="HS512")


FORGERIES = sorted(forged_tokens("x" * 32))


async def register(client: Client, bearer: Any, registration: Any) -> str:
    """A new customer's id."""
    created = await client.post("/v1/customers", json=registration(), headers=bearer())
    assert created.status == 201
    return str((await created.json())["id"])


@pytest.fixture
def secret(api_settings: Settings) -> str:
    assert api_settings.jwt_secret is not None
    return api_settings.jwt_secret.get_secret_value()


@pytest.mark.parametrize("case", FORGERIES)
async def test_a_forged_token_answers_401_and_changes_nothing(
    client: Client, bearer: Any, registration: Any, secret: str, case: str
) -> None:
    """Expired, wrongly signed, unsigned, exp-less or otherwise forged tokens answer 401."""
    created = await client.post("/v1/customers", json=registration(), headers=bearer())
    customer_url = created.headers["Location"]
    forged = {"Authorization": f"Bearer {forged_tokens(secret)[case]}"}
    read = await client.get(customer_url, headers=forged)
    write = await client.patch(
        customer_url, json={"group": "owned"}, headers={**forged, "If-Match": '"1"'}
    )
    register = await client.post("/v1/customers", json=registration(), headers=forged)
    assert (read.status, write.status, register.status) == (401, 401, 401)
    assert read.headers["WWW-Authenticate"].startswith("Bearer")
    assert read.content_type == "application/problem+json"
    after = await (await client.get(customer_url, headers=bearer())).json()
    assert after["version"] == 1 and after.get("group") is None


async def _staff_only_operations(client: Client) -> list[tuple[str, str]]:
    document = await (await client.get("/openapi.json")).json()
    return [
        (method.upper(), path)
        for path, methods in document["paths"].items()
        for method, op in methods.items()
        if op.get("x-roles") and "customer" not in op["x-roles"]
    ]


async def test_a_customer_token_gets_404_on_every_staff_operation(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Every operation the document reserves for staff answers a customer 404, even on its
    own record: it cannot even learn that the operation exists."""
    own_id = await register(client, bearer, registration)
    customer = bearer("customer", sub="ada", customer_id=own_id)
    operations = await _staff_only_operations(client)
    assert len(operations) > 20  # the document lists them; an empty list would prove nothing
    answers: dict[str, int] = {}
    for method, path in operations:
        # The customer's own id where the path names a customer, fresh ids elsewhere.
        url = path.replace("{id}", own_id)
        url = re.sub(r"\{[^}]+\}", lambda _: str(uuid4()), url)
        response = await client.request(
            method, url, json={}, headers={**customer, "If-Match": '"1"'}
        )
        answers[f"{method} {path}"] = response.status
    assert {op: status for op, status in answers.items() if status != 404} == {}


STAFF_ONLY_FIELDS = sorted(
    set(CustomerPatch.model_fields) - SELF_SERVICE_FIELDS - {"consent_channel"}
)
"""Every field of a profile change a customer may not make to its own record (the channel
of a consent is no field of the record: a customer's is always recorded as the portal)."""
ESCALATION_VALUES: dict[str, Any] = {
    "assigned_staff_ids": ["mallory"],
    "preferred_staff_id": "mallory",
    "dedicated_operator_id": "mallory",
    "discount_percent": "100",
    "payment_terms_days": 3650,
    "parent_customer_id": str(uuid4()),
    "birthday": "1990-01-01",
    "custom_fields": {"vip": "yes"},
    "gps_tracking_visible": True,
    "send_registration_email": False,
    "source": "portal",
}


@pytest.mark.parametrize("field", STAFF_ONLY_FIELDS)
async def test_a_customer_cannot_change_a_staff_field_of_its_own_record(
    client: Client, bearer: Any, registration: Any, field: str
) -> None:
    """A customer PATCHing a field only staff may set gets 422 naming it; nothing changes."""
    created = await client.post("/v1/customers", json=registration(), headers=bearer())
    own_id = (await created.json())["id"]
    customer = bearer("customer", sub="ada", customer_id=own_id)
    value = ESCALATION_VALUES.get(field, "escalated")
    response = await client.patch(
        f"/v1/customers/{own_id}", json={field: value}, headers={**customer, "If-Match": '"1"'}
    )
    assert response.status == 422, await response.text()
    assert [e["field"] for e in (await response.json())["errors"]] == [field]
    after = await client.get(f"/v1/customers/{own_id}", headers=bearer())
    assert (await after.json())["version"] == 1


@pytest.mark.parametrize("field", ["role", "customer_id", "id", "version", "blocked", "erased"])
async def test_a_customer_cannot_smuggle_claims_or_state_through_the_body(
    client: Client, bearer: Any, registration: Any, field: str
) -> None:
    """Token claims and record state are no profile fields: 422 naming the field, no change."""
    own_id = await register(client, bearer, registration)
    customer = bearer("customer", sub="ada", customer_id=own_id)
    value: Any = {"role": "admin", "customer_id": str(uuid4()), "id": str(uuid4())}.get(field, 99)
    if field in {"blocked", "erased"}:
        value = False
    response = await client.patch(
        f"/v1/customers/{own_id}", json={field: value}, headers={**customer, "If-Match": '"1"'}
    )
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == [field]
    assert (await (await client.get(f"/v1/customers/{own_id}", headers=bearer())).json())[
        "version"
    ] == 1


async def test_a_customer_cannot_book_or_open_tickets_for_another_customer(
    client: Client, bearer: Any, registration: Any
) -> None:
    """A customer naming someone else's customer_id in a booking or a ticket gets 404."""
    own_id = await register(client, bearer, registration)
    other_id = await register(client, bearer, registration)
    customer = bearer("customer", sub="ada", customer_id=own_id)
    start = datetime.now(UTC) + timedelta(days=3)
    booking = {
        "customer_id": other_id,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat(),
    }
    ticket = {"customer_id": other_id, "subject": "mine now", "problem": "x", "device": {}}
    booked = await client.post("/v1/appointments", json=booking, headers=customer)
    opened = await client.post("/v1/tickets", json=ticket, headers=customer)
    assert (booked.status, opened.status) == (404, 404)
