"""Portal access: a customer's password for the self-service portal, and one-time links.

An invite (staff) or a password reset (an admin, as the seed says) makes a one-time token,
valid for a while; its link reaches the customer through a notification. The events keep
the token's SHA-256 hash, to check it when it comes back, and the token sealed with the
service key, so the notification relay can put it in the link; never the token in clear,
and never a password. Setting the password through the link stores its argon2id hash and
uses the token up; a newer invite or reset replaces an older token.

The account is an aggregate of its own, not part of the Customer: credentials stay out of
the customer's record, its history and its time travel, and a login loads a short stream.
Its id is derived from the customer's. Every event carries `customer_id`.

A merge moves a merged customer's account to the survivor (`Relinked`), so its email
(now the survivor's login too) logs in with the password it had, unless the survivor has
an account already: then the merged one is closed (`Closed`, naming the merge and the
account kept) and its links stop working. Undoing the merge moves it back or reopens it,
password and all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from domain.base import TracedAggregate
from domain.errors import DomainError, RuleViolationError
from domain.relinking import Relinkable

__all__ = [
    "INVITE_VALIDITY",
    "RESET_VALIDITY",
    "AccountDisabledError",
    "InvalidCredentialsError",
    "InvalidTokenError",
    "PortalAccount",
    "new_token",
    "portal_account_id",
    "token_customer_id",
    "token_hash",
]

INVITE_VALIDITY = timedelta(days=7)
RESET_VALIDITY = timedelta(hours=24)
_NAMESPACE = UUID("a53f0e2d-7c41-4b8e-9d16-2f8c4e7b1a60")


def portal_account_id(customer_id: UUID) -> UUID:
    return uuid5(_NAMESPACE, str(customer_id))


def new_token(customer_id: UUID) -> str:
    """A one-time token: the customer's id (to find the account) and 256 random bits."""
    return f"{customer_id.hex}.{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_customer_id(token: str) -> UUID | None:
    """The customer a token was made for, or None when it is not shaped like one."""
    prefix, dot, rest = token.partition(".")
    if not dot or not rest or len(prefix) != 32:
        return None
    try:
        return UUID(hex=prefix)
    except ValueError:
        return None


class InvalidTokenError(RuleViolationError):
    """The link's token is unknown, used up, replaced or expired."""

    def __init__(self) -> None:
        super().__init__("token", "this link is not valid any more; ask for a new one")


class InvalidCredentialsError(DomainError):
    """The login and password do not match a portal account."""

    def __init__(self) -> None:
        super().__init__("the login or the password is wrong")


class AccountDisabledError(DomainError):
    """The password is right, but the customer may not log in (blocked, deleted, erased)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"this customer account is {reason}: it cannot log in")
        self.reason = reason


class PortalAccount(Relinkable, TracedAggregate):
    """One customer's portal credentials."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        password_hash: str | None
        """argon2id; None until the customer sets a password through a link."""
        token_hash: str | None
        """SHA-256 of the one valid link token, if any."""
        token_expires_at: datetime | None
        invited_at: datetime | None
        password_set_at: datetime | None
        opened_for: UUID
        """The customer it was opened for (its id derives from it), whoever has it now."""
        closed_by: UUID | None
        """The merge that closed it (the survivor kept its own account); None while open."""
        closed_reason: str | None

    class Opened(TracedAggregate.Created):
        customer_id: UUID

        def apply(self, account: PortalAccount) -> None:
            account.customer_id = account.opened_for = self.customer_id
            account.password_hash = account.token_hash = None
            account.token_expires_at = account.invited_at = account.password_set_at = None
            account.closed_by = account.closed_reason = None

    class Invited(TracedAggregate.Event):
        customer_id: UUID
        token_hash: str
        expires_at: datetime
        sealed_token: str
        """The token sealed with the service key, for the notification's link only."""

        def apply(self, account: PortalAccount) -> None:
            account.token_hash, account.token_expires_at = self.token_hash, self.expires_at
            account.invited_at = self.timestamp

    class PasswordResetRequested(TracedAggregate.Event):
        customer_id: UUID
        token_hash: str
        expires_at: datetime
        sealed_token: str

        def apply(self, account: PortalAccount) -> None:
            account.token_hash, account.token_expires_at = self.token_hash, self.expires_at

    class PasswordSet(TracedAggregate.Event):
        customer_id: UUID
        password_hash: str

        def apply(self, account: PortalAccount) -> None:
            account.password_hash = self.password_hash
            account.token_hash = account.token_expires_at = None
            account.password_set_at = self.timestamp

    # ---- merges of its customer --------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    class Closed(TracedAggregate.Event):
        customer_id: UUID
        merge_id: UUID
        reason: str

        def apply(self, account: PortalAccount) -> None:
            account.closed_by, account.closed_reason = self.merge_id, self.reason

    class Reopened(TracedAggregate.Event):
        customer_id: UUID
        merge_id: UUID

        def apply(self, account: PortalAccount) -> None:
            account.closed_by = account.closed_reason = None

    def close(self, merge_id: UUID, survivor_id: UUID, kept: UUID) -> None:
        """Closed by a merge into a survivor that has an account (`kept`) already."""
        reason = (
            f"customer {self.customer_id} was merged into customer {survivor_id}"
            f" (merge {merge_id}), whose portal account {kept} is kept"
        )
        self.trigger_event(
            self.Closed, customer_id=self.customer_id, merge_id=merge_id, reason=reason
        )

    def reopen(self, merge_id: UUID) -> None:
        """The merge that closed it was undone."""
        self.trigger_event(self.Reopened, customer_id=self.customer_id, merge_id=merge_id)

    @classmethod
    def open(cls, customer_id: UUID) -> PortalAccount:
        return cls._create(cls.Opened, id=portal_account_id(customer_id), customer_id=customer_id)

    def invite(self, token: str, sealed_token: str, now: datetime) -> datetime:
        """Send a set-password link; returns when it expires."""
        expires_at = now + INVITE_VALIDITY
        self.trigger_event(
            self.Invited,
            customer_id=self.customer_id,
            token_hash=token_hash(token),
            expires_at=expires_at,
            sealed_token=sealed_token,
        )
        return expires_at

    def request_reset(self, token: str, sealed_token: str, now: datetime) -> datetime:
        """Send a reset link; returns when it expires. The old password stays until used."""
        expires_at = now + RESET_VALIDITY
        self.trigger_event(
            self.PasswordResetRequested,
            customer_id=self.customer_id,
            token_hash=token_hash(token),
            expires_at=expires_at,
            sealed_token=sealed_token,
        )
        return expires_at

    def check_token(self, token: str, now: datetime) -> None:
        """Refuse a token that is not the account's current, unexpired one (or any, once
        the account is closed)."""
        if (
            self.closed_by is not None
            or self.token_hash is None
            or self.token_expires_at is None
            or not hmac.compare_digest(self.token_hash, token_hash(token))
            or now >= self.token_expires_at
        ):
            raise InvalidTokenError()

    def set_password(self, token: str, password_hash: str, now: datetime) -> None:
        """Store the new password's hash, using the token up."""
        self.check_token(token, now)
        self.trigger_event(
            self.PasswordSet, customer_id=self.customer_id, password_hash=password_hash
        )
