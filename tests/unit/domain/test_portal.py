"""Portal access in memory: one-time links, argon2id passwords, and who may log in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from argon2 import profiles

from domain.errors import ConflictError, NotFoundError, RuleViolationError
from domain.passwords import PasswordHasher
from domain.portal import (
    AccountDisabledError,
    InvalidCredentialsError,
    InvalidTokenError,
    PortalAccount,
    portal_account_id,
    token_hash,
)
from domain.sealing import SecretSealer
from domain.service import CustomerService

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock: Clock) -> CustomerService:
    return CustomerService(
        sealer=SecretSealer(SecretSealer.generate_key()),
        clock=clock,
        password_hasher=PasswordHasher(profiles.CHEAPEST),
    )


@pytest.fixture
def customer(service: CustomerService) -> UUID:
    fields = {"first_name": "Ann", "email": "Ann@Example.com", "username": "ann"}
    return service.register_customer(fields).aggregate_id


def link_token(service: CustomerService, customer_id: UUID) -> str:
    """The token the newest invite or reset sent (as the notification relay unseals it)."""
    events = list(service.events.get(portal_account_id(customer_id)))
    sent = [
        e
        for e in events
        if isinstance(e, PortalAccount.Invited | PortalAccount.PasswordResetRequested)
    ]
    return service.sealer.unseal(sent[-1].sealed_token)


def stored(service: CustomerService) -> bytes:
    return b"".join(n.state for n in service.recorder.select_notifications(start=1, limit=10_000))


def test_an_invite_stores_the_tokens_hash_never_the_token(
    service: CustomerService, customer: UUID
) -> None:
    """The event carries the SHA-256 of the token and the token sealed; no clear token."""
    receipt = service.invite_to_portal(customer)
    assert receipt.result["expires_at"] == service.clock() + timedelta(days=7)
    token = link_token(service, customer)
    [_, invited] = service.events.get(portal_account_id(customer))
    assert isinstance(invited, PortalAccount.Invited)
    assert invited.token_hash == token_hash(token) and invited.customer_id == customer
    assert token.encode() not in stored(service)


def test_a_password_set_through_the_link_logs_in_by_email_or_username(
    service: CustomerService, customer: UUID
) -> None:
    """The link sets an argon2id hash; the email (any case) or the username logs in."""
    service.invite_to_portal(customer)
    service.set_portal_password(link_token(service, customer), PASSWORD)
    account: PortalAccount = service.repository.get(portal_account_id(customer))
    assert account.password_hash is not None and account.password_hash.startswith("$argon2id$")
    assert PASSWORD.encode() not in stored(service)
    assert service.authenticate_customer("ann@example.COM", PASSWORD) == customer
    assert service.authenticate_customer(" ann ", PASSWORD) == customer
    for login, password in (("ann@example.com", "wrong password"), ("nobody@x.org", PASSWORD)):
        with pytest.raises(InvalidCredentialsError):
            service.authenticate_customer(login, password)


def test_a_token_works_once_and_not_after_it_expires(
    service: CustomerService, customer: UUID, clock: Clock
) -> None:
    """A used token is refused; so is one past its time, and one replaced by a newer link."""
    service.invite_to_portal(customer)
    token = link_token(service, customer)
    service.set_portal_password(token, PASSWORD)
    with pytest.raises(InvalidTokenError):
        service.set_portal_password(token, "another password")
    service.request_password_reset(customer)
    old = link_token(service, customer)
    service.request_password_reset(customer)
    with pytest.raises(InvalidTokenError):
        service.set_portal_password(old, "another password")
    clock.now += timedelta(hours=25)
    with pytest.raises(InvalidTokenError):
        service.set_portal_password(link_token(service, customer), "another password")
    for nonsense in ("", "abc", "0" * 32 + ".x", f"{customer.hex}.forged"):
        with pytest.raises(InvalidTokenError):
            service.set_portal_password(nonsense, "another password")


def test_a_reset_keeps_the_old_password_until_the_new_one_is_set(
    service: CustomerService, customer: UUID
) -> None:
    """Asking for a reset changes nothing until the link is used."""
    service.invite_to_portal(customer)
    service.set_portal_password(link_token(service, customer), PASSWORD)
    service.request_password_reset(customer)
    assert service.authenticate_customer("ann", PASSWORD) == customer
    service.set_portal_password(link_token(service, customer), "a brand new secret")
    with pytest.raises(InvalidCredentialsError):
        service.authenticate_customer("ann", PASSWORD)


def test_short_passwords_are_refused(service: CustomerService, customer: UUID) -> None:
    """At least ten characters (422 naming the password)."""
    service.invite_to_portal(customer)
    with pytest.raises(RuleViolationError) as refused:
        service.set_portal_password(link_token(service, customer), "short")
    assert refused.value.field == "password"


def test_blocked_and_deleted_customers_cannot_log_in(
    service: CustomerService, customer: UUID
) -> None:
    """With the right password, a blocked or deleted customer is refused as such."""
    service.invite_to_portal(customer)
    service.set_portal_password(link_token(service, customer), PASSWORD)
    service.block_customer(customer, "unpaid", expected_version=1)
    with pytest.raises(AccountDisabledError) as blocked:
        service.authenticate_customer("ann", PASSWORD)
    assert blocked.value.reason == "blocked"
    service.unblock_customer(customer, expected_version=2)
    service.delete_customer(customer, expected_version=3)
    with pytest.raises(AccountDisabledError) as deleted:
        service.authenticate_customer("ann", PASSWORD)
    assert deleted.value.reason == "deleted"


def test_who_can_be_invited(service: CustomerService) -> None:
    """Not an unknown customer (404), a deleted or blocked one, or one with nothing to log
    in with (409)."""
    with pytest.raises(NotFoundError):
        service.invite_to_portal(UUID(int=1))
    nameless = service.register_customer({"first_name": "Bo"}).aggregate_id
    with pytest.raises(ConflictError) as no_login:
        service.invite_to_portal(nameless)
    assert no_login.value.field == "email"
    blocked = service.register_customer({"first_name": "Cy", "username": "cy"}).aggregate_id
    service.block_customer(blocked, None, expected_version=1)
    with pytest.raises(ConflictError) as refused:
        service.invite_to_portal(blocked)
    assert refused.value.field == "blocked"


def test_the_customers_own_stream_holds_no_credentials(
    service: CustomerService, customer: UUID
) -> None:
    """Portal events live in the account's stream: the customer's history stays clean."""
    service.invite_to_portal(customer)
    service.set_portal_password(link_token(service, customer), PASSWORD)
    assert [type(e).__name__ for e in service.customer_events(customer)] == ["Registered"]
