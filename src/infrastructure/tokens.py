"""Bearer tokens: the claims of API.md, signed HS256 with the shared secret.

One place signs them, for the gateway's login, the CLI's `customers token` and tests; the
gateway's auth module verifies them with the same algorithm and key rules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from uuid import UUID

import jwt
from pydantic import SecretStr

__all__ = ["ALGORITHM", "MIN_SECRET_BYTES", "ROLES", "Role", "issue_token", "signing_key"]

Role = Literal["admin", "staff", "service", "customer"]
ROLES: tuple[Role, ...] = get_args(Role)
ALGORITHM = "HS256"
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (256 bits).
MIN_SECRET_BYTES = 32


def signing_key(secret: SecretStr | str) -> bytes:
    """The secret as key bytes, refused when shorter than HS256 allows."""
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    key = raw.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long")
    return key


def issue_token(
    secret: SecretStr | str,
    sub: str,
    role: Role,
    customer_id: UUID | None = None,
    ttl: timedelta = timedelta(hours=1),
    *,
    now: datetime | None = None,
) -> str:
    """Sign a token for `sub`; a customer token names its customer, and only it does."""
    if not sub:
        raise ValueError("a token needs a subject")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if (role == "customer") != (customer_id is not None):
        raise ValueError("customer_id goes with the customer role, and only with it")
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {"sub": sub, "role": role, "iat": issued, "exp": issued + ttl}
    if customer_id is not None:
        claims["customer_id"] = str(customer_id)
    return jwt.encode(claims, signing_key(secret), algorithm=ALGORITHM)
