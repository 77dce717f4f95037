"""Bearer tokens: who is calling, what they may do, and whose name goes on the events.

The auth middleware verifies `Authorization: Bearer <JWT>` (HS256 only, `exp` required)
on every matched route except the open ones, stores the `Principal` on the request, and
binds its `sub` as the actor (with the request id as correlation id) around the handler,
so the events the handler causes record who and why without any argument passing.

Refusals follow API.md: 401 for a missing or bad token, 403 when a staff role lacks the
right, and 404 (never 403) when a `customer` token reaches anything but its own data.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

import jwt
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from domain.context import acting_as
from gateway.keys import ACTOR_KEY, PRINCIPAL_KEY, REQUEST_ID_KEY, VERIFIER_KEY
from gateway.problems import Problem
from infrastructure.tokens import ALGORITHM, Role, issue_token, signing_key

__all__ = [
    "ALGORITHMS",
    "CLOCK_SKEW",
    "EVERYONE",
    "OPEN_ROUTES",
    "STAFF",
    "Principal",
    "Role",
    "TokenVerifier",
    "auth_middleware",
    "can_see_customer",
    "is_open",
    "issue_token",
    "principal",
    "require_role",
    "requires",
    "roles_of",
]

STAFF: tuple[Role, ...] = ("admin", "staff", "service")
"""The business's roles: they act on any customer's records."""
EVERYONE: tuple[Role, ...] = (*STAFF, "customer")
"""With a customer token too, which reaches only its own customer's records."""

H = TypeVar("H", bound=Callable[[web.Request], Any])

# API.md: "other algorithms may be added". Never "none", never a list the token chooses from.
ALGORITHMS = (ALGORITHM,)
CLOCK_SKEW = timedelta(seconds=10)
ANONYMOUS = "anonymous"

# (method, route template): judged on the route that matched, so the handler that runs
# is exactly the one that was judged open. HEAD counts as GET.
OPEN_ROUTES = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/asyncapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/static"),  # the static resource's template covers its files
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/set-password"),
    }
)
_ROLES_ATTR = "__gateway_roles__"


class Principal(BaseModel):
    """The verified caller: `sub` is the actor recorded on events."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sub: str = Field(min_length=1)
    role: Role
    customer_id: UUID | None = None

    @model_validator(mode="after")
    def _customer_needs_id(self) -> Principal:
        if self.role == "customer" and self.customer_id is None:
            raise ValueError("a customer token needs a customer_id claim")
        return self


class TokenVerifier:
    """Checks tokens against one shared secret; with no secret every token is refused.

    A token verified once is remembered (by its exact text) until its `exp` plus the
    clock skew allowed, the moment `jwt.decode` would refuse it: callers reuse a token
    for many requests, and checking its signature and claims again was 6% of the
    gateway's time. With one HS256 secret and no revocation, a token valid a moment
    ago stays valid until it expires, so the cache answers what verification would.
    Only valid tokens are kept, at most `cache_size` of them.
    """

    def __init__(self, secret: SecretStr | str | None, *, cache_size: int = 1024) -> None:
        self._key = signing_key(secret) if secret is not None else None
        self._cache_size = cache_size
        self._verified: dict[str, tuple[Principal, float]] = {}
        """token -> (its principal, the time after which it is refused)."""

    @property
    def configured(self) -> bool:
        """Whether a secret was given (without one, only open routes answer)."""
        return self._key is not None

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; a 401 Problem otherwise."""
        if self._key is None:
            raise _unauthorized("Authentication is not configured on this server.")
        remembered = self._verified.get(token)
        if remembered is not None:
            if time.time() < remembered[1]:
                return remembered[0]
            del self._verified[token]
        who, refused_after = self._verify(token, self._key)
        if len(self._verified) >= self._cache_size:
            self._forget_some()
        self._verified[token] = (who, refused_after)
        return who

    def _forget_some(self) -> None:
        """Drop the expired tokens, or else the oldest half (insertion order)."""
        now = time.time()
        expired = [token for token, (_, until) in self._verified.items() if until < now]
        for token in expired or list(self._verified)[: self._cache_size // 2 or 1]:
            del self._verified[token]

    @staticmethod
    def _verify(token: str, key: bytes) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                options={"require": ["exp", "sub"]},
                leeway=CLOCK_SKEW,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("The token has expired.", invalid=True) from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"The token is not valid: {exc}.", invalid=True) from None
        try:
            who = Principal.model_validate(claims)
        except ValidationError as exc:
            problems = "; ".join(
                e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False)
            )
            raise _unauthorized(
                f"The token's claims are not valid: {problems}.", invalid=True
            ) from None
        # `require: exp` above: decode refuses a token without one.
        return who, float(claims["exp"]) + CLOCK_SKEW.total_seconds()


def is_open(method: str, route: str) -> bool:
    """Whether `method` on the route template needs no token."""
    return ("GET" if method == "HEAD" else method, route) in OPEN_ROUTES


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Verify the bearer token of protected routes and bind the actor around the handler."""
    rid = request.get(REQUEST_ID_KEY, "")
    resource = request.match_info.route.resource
    # No matching route: let aiohttp's 404/405 through rather than a 401 (the routes are
    # public in /openapi.json anyway).
    if resource is None or is_open(request.method, resource.canonical):
        with acting_as(ANONYMOUS, rid):
            return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("This operation needs Authorization: Bearer <token>.")
    who = request.app[VERIFIER_KEY].verify(token.strip())
    request[PRINCIPAL_KEY] = who
    request[ACTOR_KEY] = who.sub
    with acting_as(who.sub, rid), structlog.contextvars.bound_contextvars(actor=who.sub):
        return await handler(request)


def principal(request: web.Request) -> Principal:
    """The caller of a protected route (a 401 if asked on an open route without a token)."""
    who: Principal | None = request.get(PRINCIPAL_KEY)
    if who is None:
        raise _unauthorized("This operation needs Authorization: Bearer <token>.")
    return who


def require_role(request: web.Request, *roles: Role) -> Principal:
    """The caller if its role is one of `roles`: else 404 for a customer, 403 for staff."""
    who = principal(request)
    if who.role in roles:
        return who
    if who.role == "customer":
        # A customer must not learn that a staff-only resource exists.
        raise Problem(404, "Not found.")
    raise Problem(403, f"This operation needs the role {' or '.join(roles)}.")


def requires(*roles: Role) -> Callable[[H], H]:
    """Decorate a handler to run only for `roles` (see `require_role`); shown in OpenAPI."""

    def decorate(handler: H) -> H:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> Any:
            require_role(request, *roles)
            return await handler(request)

        setattr(guarded, _ROLES_ATTR, roles)
        return guarded  # type: ignore[return-value]

    return decorate


def roles_of(handler: object) -> tuple[Role, ...] | None:
    """The roles a handler was decorated with by `requires`, if any."""
    return getattr(handler, _ROLES_ATTR, None)


def can_see_customer(who: Principal, customer_id: UUID) -> bool:
    """Whether `who` may see that customer; when False, answer 404 exactly as for a miss."""
    return who.role != "customer" or who.customer_id == customer_id


def _unauthorized(detail: str, *, invalid: bool = False) -> Problem:
    # RFC 6750 §3: name the scheme always, and say invalid_token when one was sent.
    challenge = 'Bearer realm="customers"'
    if invalid:
        challenge += ', error="invalid_token"'
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})
