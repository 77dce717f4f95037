"""The customer portal: invites, password resets, setting a password, and logging in.

`POST /v1/auth/login` and `POST /v1/auth/set-password` are open (no token): the first
gives a `customer` token for a right password, the second sets the password through the
one-time token of an invite or reset link. Wrong passwords are counted per login in
PostgreSQL (`gateway.login_guard`): too many lock the login for a while (429 with
Retry-After), whichever gateway process the attempts reach.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from domain.passwords import MAX_PASSWORD_LENGTH
from domain.portal import AccountDisabledError, InvalidCredentialsError
from domain.service import Receipt
from gateway.auth import Role, requires
from gateway.commands import idempotency_of, service_of
from gateway.keys import SETTINGS_KEY
from gateway.login_guard import LoginGuard
from gateway.operations import operation
from gateway.problems import Problem
from gateway.reads import read_pool
from gateway.requests import command_headers, json_response, path_uuid, read_json
from gateway.threads import run_sync
from infrastructure.tokens import issue_token

__all__ = ["CUSTOMER_TOKEN_TTL", "LOGIN_GUARD_KEY", "add_routes"]

CUSTOMER_TOKEN_TTL = timedelta(hours=8)
LOGIN_GUARD_KEY: web.AppKey[LoginGuard] = web.AppKey("login_guard")
STAFF: tuple[Role, ...] = ("admin", "staff", "service")


def add_routes(app: web.Application) -> None:
    app[LOGIN_GUARD_KEY] = LoginGuard(app[SETTINGS_KEY].db_schema)
    r = app.router
    r.add_post("/v1/customers/{id}/portal/invite", invite)
    r.add_post("/v1/customers/{id}/portal/password-reset", password_reset)
    r.add_post("/v1/auth/login", login)
    r.add_post("/v1/auth/set-password", set_password)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    login: Annotated[str, Field(min_length=1, max_length=320)]
    """The customer's email or username."""
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class SetPasswordIn(_In):
    token: Annotated[str, Field(min_length=1, max_length=200)]
    """The one-time token of the invite or reset link."""
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class LinkSentOut(BaseModel):
    customer_id: UUID
    expires_at: datetime
    """Until when the link's token can set a password."""


class TokenOut(BaseModel):
    token: str
    """A bearer token with role `customer`."""
    token_type: str = "Bearer"
    expires_at: datetime
    customer_id: UUID


class PasswordSetOut(BaseModel):
    customer_id: UUID


@operation(
    "Give a customer portal access",
    tag="portal",
    description="Emits an invite event with a one-time token's hash; the notification "
    "relay sends the set-password link (valid for 7 days).",
    responses={202: LinkSentOut},
    response_headers=("X-Event-Position",),
    errors=(409,),
)
@requires(*STAFF)
async def invite(request: web.Request) -> web.Response:
    receipt = await run_sync(
        request,
        service_of(request).invite_to_portal,
        path_uuid(request),
        idempotency=await idempotency_of(request),
    )
    return _link_sent(receipt)


@operation(
    "Reset a customer's portal password",
    tag="portal",
    description="Emits a reset event with a one-time token's hash; the notification relay "
    "sends the link (valid for 24 hours). The old password works until the new one is set.",
    responses={202: LinkSentOut},
    response_headers=("X-Event-Position",),
    errors=(409,),
)
@requires("admin")
async def password_reset(request: web.Request) -> web.Response:
    receipt = await run_sync(
        request,
        service_of(request).request_password_reset,
        path_uuid(request),
        idempotency=await idempotency_of(request),
    )
    return _link_sent(receipt)


@operation(
    "Set the portal password with a link's one-time token",
    tag="portal",
    request=SetPasswordIn,
    responses={200: PasswordSetOut},
    response_headers=("X-Event-Position",),
)
async def set_password(request: web.Request) -> web.Response:
    body = await read_json(request, SetPasswordIn)
    receipt = await run_sync(
        request, service_of(request).set_portal_password, body.token, body.password
    )
    return json_response(
        PasswordSetOut.model_validate(receipt.result),
        headers=command_headers(position=receipt.position),
    )


@operation(
    "Log in to the portal: a customer token",
    tag="portal",
    description="401 for a wrong login or password, 403 for a blocked, deleted or erased "
    "customer, 429 (with Retry-After) while the login is locked after repeated failures.",
    request=LoginIn,
    responses={200: TokenOut},
    errors=(401, 403, 429),
)
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginIn)
    if request.app[SETTINGS_KEY].database_url is None:
        raise Problem(503, "Logging in needs the database, which is not configured.")
    guard, pool = request.app[LOGIN_GUARD_KEY], read_pool(request)
    retry_after = await guard.attempt(pool, body.login)
    if retry_after is not None:
        raise Problem(
            429,
            "Too many failed logins: this login is locked for a while.",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        customer_id = await run_sync(
            request, service_of(request).authenticate_customer, body.login, body.password
        )
    except InvalidCredentialsError as error:
        raise Problem(
            401, error.message, headers={"WWW-Authenticate": 'Bearer realm="customers"'}
        ) from None
    except AccountDisabledError as error:
        await guard.succeeded(pool, body.login)  # the password was right
        raise Problem(403, error.message) from None
    await guard.succeeded(pool, body.login)
    secret = request.app[SETTINGS_KEY].jwt_secret
    if secret is None:
        raise Problem(503, "Authentication is not configured on this server.")
    issued = datetime.now(UTC)
    token = issue_token(
        secret,
        f"customer:{customer_id}",
        "customer",
        customer_id,
        CUSTOMER_TOKEN_TTL,
        now=issued,
    )
    return json_response(
        TokenOut(token=token, expires_at=issued + CUSTOMER_TOKEN_TTL, customer_id=customer_id)
    )


def _link_sent(receipt: Receipt) -> web.Response:
    headers = command_headers(position=receipt.position)
    if receipt.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(LinkSentOut.model_validate(receipt.result), status=202, headers=headers)
