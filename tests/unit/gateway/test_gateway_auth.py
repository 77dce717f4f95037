"""Bearer tokens are verified strictly, roles are enforced, and the actor reaches the events."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from aiohttp import web

from domain.context import current_actor, current_correlation_id
from gateway.auth import (
    CLOCK_SKEW,
    Principal,
    TokenVerifier,
    can_see_customer,
    issue_token,
    principal,
    requires,
)
from gateway.problems import Problem
from gateway.requests import json_response
from gateway.threads import run_sync

PROBLEM = "application/problem+json"


async def whoami(request: web.Request) -> web.Response:
    """Report the principal and the actor and correlation id bound here and in a thread."""

    def in_thread() -> tuple[str, str, str]:
        return current_actor(), current_correlation_id(), threading.current_thread().name

    actor, correlation, thread = await run_sync(request, in_thread)
    who = principal(request)
    return json_response(
        {
            "sub": who.sub,
            "role": who.role,
            "actor": current_actor(),
            "thread_actor": actor,
            "correlation": correlation,
            "thread": thread,
        }
    )


@requires("admin")
async def admin_only(request: web.Request) -> web.Response:
    """Only admins may erase."""
    return json_response({"ok": True})


ROUTES = [web.get("/whoami", whoami), web.post("/erase", admin_only)]


def forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token with arbitrary header and claims (for alg=none and similar attacks)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)]
    )


def future() -> int:
    """An `exp` an hour ahead."""
    return int((datetime.now(UTC) + timedelta(hours=1)).timestamp())


async def test_valid_token_binds_the_actor_and_correlation_id(
    make_client: Any, bearer: Any
) -> None:
    """A token's sub is the actor in the handler and its thread, the request id the correlation."""
    client = await make_client(ROUTES)
    response = await client.get(
        "/whoami", headers={**bearer("staff", "bob"), "X-Request-ID": "req-1"}
    )
    body = await response.json()
    assert response.status == 200
    assert body["sub"] == body["actor"] == body["thread_actor"] == "bob"
    assert body["correlation"] == "req-1"
    assert body["thread"].startswith("gateway-sync")


async def test_missing_token_is_401_with_challenge(make_client: Any) -> None:
    """A protected route without a token answers 401 with WWW-Authenticate: Bearer."""
    client = await make_client(ROUTES)
    response = await client.get("/whoami")
    assert response.status == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _tokens(secret: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "garbage": "not-a-jwt",
        "wrong secret": issue_token("another-secret-that-is-also-long-enough!", "ann", "admin"),
        "expired": issue_token(
            secret, "ann", "admin", ttl=timedelta(minutes=1), now=now - timedelta(hours=1)
        ),
        "alg none": forged(
            {"alg": "none", "typ": "JWT"}, {"sub": "ann", "role": "admin", "exp": future()}
        ),
        "HS512": jwt.encode(
            {"sub": "ann", "role": "admin", "exp": future()}, secret + "x" * 32, algorithm="HS512"
        ),
        "no exp": jwt.encode({"sub": "ann", "role": "admin"}, secret, algorithm="HS256"),
        "unknown role": jwt.encode(
            {"sub": "ann", "role": "root", "exp": future()}, secret, algorithm="HS256"
        ),
        "customer without id": jwt.encode(
            {"sub": "c", "role": "customer", "exp": future()}, secret, algorithm="HS256"
        ),
    }


@pytest.mark.parametrize("case", list(_tokens("x" * 32)))
async def test_bad_tokens_are_401(make_client: Any, jwt_secret: str, case: str) -> None:
    """Malformed, foreign, expired, unsigned, other-algorithm or ill-claimed tokens answer 401."""
    client = await make_client(ROUTES)
    token = _tokens(jwt_secret)[case]
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401, case
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_expired_token_says_so(make_client: Any, jwt_secret: str) -> None:
    """An expired token's 401 says that it expired."""
    client = await make_client(ROUTES)
    token = _tokens(jwt_secret)["expired"]
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert "expired" in (await response.json(content_type=PROBLEM))["detail"]


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/static/swagger-ui.css"],
)
async def test_open_routes_need_no_token(make_client: Any, path: str) -> None:
    """Health, metrics, OpenAPI and the docs answer without a token."""
    client = await make_client()
    response = await client.get(path)
    assert response.status == 200


async def test_role_missing_is_403_for_staff(make_client: Any, bearer: Any) -> None:
    """A staff token on an admin-only operation answers 403."""
    client = await make_client(ROUTES)
    response = await client.post("/erase", headers=bearer("staff"))
    assert response.status == 403


async def test_role_missing_is_404_for_a_customer(make_client: Any, bearer: Any) -> None:
    """A customer token on a staff-only operation answers 404, hiding that it exists."""
    client = await make_client(ROUTES)
    response = await client.post("/erase", headers=bearer("customer", "c1", uuid4()))
    assert response.status == 404


async def test_required_role_passes(make_client: Any, bearer: Any) -> None:
    """A token with the required role reaches the handler."""
    client = await make_client(ROUTES)
    response = await client.post("/erase", headers=bearer("admin"))
    assert response.status == 200


def test_customer_sees_only_itself() -> None:
    """A customer principal may see only its own customer; other roles see every customer."""
    own, other = uuid4(), uuid4()
    customer = Principal(sub="c", role="customer", customer_id=own)
    staff = Principal(sub="s", role="staff")
    assert can_see_customer(customer, own)
    assert not can_see_customer(customer, other)
    assert can_see_customer(staff, other)


def test_issue_token_round_trips_the_claims(jwt_secret: str) -> None:
    """An issued token carries sub, role, customer_id and exp, signed with HS256."""
    cid = UUID(int=1)
    token = issue_token(jwt_secret, "c1", "customer", cid, ttl=timedelta(minutes=5))
    claims = jwt.decode(token, jwt_secret, algorithms=["HS256"])
    assert (claims["sub"], claims["role"], claims["customer_id"]) == ("c1", "customer", str(cid))
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_short_secrets_are_refused() -> None:
    """A secret shorter than 32 bytes cannot sign tokens."""
    with pytest.raises(ValueError, match="32 bytes"):
        issue_token("short", "ann", "admin")


async def test_without_a_secret_protected_routes_answer_401(make_client: Any, bearer: Any) -> None:
    """With no JWT secret configured every protected route refuses, and open ones still answer."""
    client = await make_client(ROUTES, jwt_secret=None)
    assert (await client.get("/whoami", headers=bearer())).status == 401
    assert (await client.get("/healthz")).status == 200


def test_a_verified_token_is_answered_from_memory_until_it_expires(
    jwt_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second request with a token does not verify it again, and the remembered
    answer ends when `jwt.decode` would start refusing it (exp plus the clock skew)."""
    verifier = TokenVerifier(jwt_secret)
    issued = datetime.now(UTC) - CLOCK_SKEW
    token = issue_token(jwt_secret, "svc", "service", ttl=timedelta(seconds=1.5), now=issued)
    assert verifier.verify(token).sub == "svc"
    decoded: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(a[0]) or real_decode(*a, **k))
    assert verifier.verify(token).sub == "svc"
    assert decoded == []
    time.sleep(max(0.0, (issued + CLOCK_SKEW + timedelta(seconds=1.6)).timestamp() - time.time()))
    with pytest.raises(Problem) as refused:
        verifier.verify(token)
    assert refused.value.status == 401
    assert decoded == [token]


def test_refused_tokens_are_not_remembered_and_the_memory_is_bounded(jwt_secret: str) -> None:
    verifier = TokenVerifier(jwt_secret, cache_size=4)
    tampered = issue_token(jwt_secret, "svc", "service")[:-2] + "xx"
    for _ in range(2):
        with pytest.raises(Problem):
            verifier.verify(tampered)
    tokens = [issue_token(jwt_secret, f"svc{i}", "service") for i in range(10)]
    assert [verifier.verify(token).sub for token in tokens] == [f"svc{i}" for i in range(10)]
    assert len(verifier._verified) <= 4
    assert tampered not in verifier._verified
