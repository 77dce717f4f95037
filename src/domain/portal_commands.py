"""Portal commands: invite, reset, set a password through a link, and check a login.

A login is the customer's email or username, found through the reservation that keeps
each of them unique (exact, in the event store: no read model lag). After a merge the
login is the survivor's, and so is the account it opens: the survivor's own, else the one a
merge moved to it (`portal_account_of`). Repeated failures
are counted by the gateway in PostgreSQL (`gateway.login_guard`), where every gateway
process sees the same count; the domain only says whether one attempt is right.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.customers import Customer
from domain.errors import ConflictError, MergedCustomerError, RuleViolationError
from domain.passwords import PasswordHasher, check_password_rules
from domain.portal import (
    AccountDisabledError,
    InvalidCredentialsError,
    InvalidTokenError,
    PortalAccount,
    new_token,
    portal_account_id,
    token_customer_id,
)
from domain.reservations import Reservation, reservation_id
from domain.sealing import SecretSealer
from domain.values import normalise_email
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["PortalCommands", "portal_account_of"]


class PortalCommands(WritePath):
    """The portal part of the service; `clock`, `sealer` and `password_hasher` are set by it."""

    clock: Callable[[], datetime]
    sealer: SecretSealer
    password_hasher: PasswordHasher

    def invite_to_portal(
        self, customer_id: UUID, *, idempotency: Idempotency | None = None
    ) -> Receipt:
        """Give the customer portal access: a set-password link, valid for a week."""
        return self._send_link(customer_id, PortalAccount.invite, idempotency)

    def request_password_reset(
        self, customer_id: UUID, *, idempotency: Idempotency | None = None
    ) -> Receipt:
        """A reset link, valid for a day (admins only: the gateway checks the role)."""
        return self._send_link(customer_id, PortalAccount.request_reset, idempotency)

    def set_portal_password(self, token: str, password: str) -> Receipt:
        """Set the password through a link's one-time token, which it uses up."""
        customer_id = token_customer_id(token)
        if customer_id is None:
            raise InvalidTokenError()
        check_password_rules(password)
        account = self._account(customer_id)
        if account is None:
            raise InvalidTokenError()
        # Checked before the (slow) hashing, and again on the fresh account below.
        account.check_token(token, self.clock())
        password_hash = self.password_hasher.hash(password)

        def attempt() -> Change:
            fresh = self._account(customer_id)
            if fresh is None:
                raise InvalidTokenError()
            fresh.set_password(token, password_hash, self.clock())
            result = {"customer_id": fresh.customer_id}  # the survivor, once merged
            return Change(fresh.id, fresh.version, result, [fresh])

        return self.execute(attempt, None, key=account.id)

    def authenticate_customer(self, login: str, password: str) -> UUID:
        """The customer whose portal login this is; InvalidCredentialsError when wrong,
        AccountDisabledError when right but the customer may not log in."""
        customer_id = self._login_owner(login)
        account = portal_account_of(self, customer_id) if customer_id else None
        password_hash = account.password_hash if account else None
        if not self.password_hasher.verify(password_hash, password) or customer_id is None:
            raise InvalidCredentialsError()
        customer: Customer = self.load(customer_id, Customer, None)
        if getattr(customer, "erased", False):
            raise AccountDisabledError("erased")
        if customer.deleted:
            raise AccountDisabledError("deleted")
        if customer.blocked:
            raise AccountDisabledError("blocked")
        return customer_id

    # ---- helpers ---------------------------------------------------------------------------

    def _send_link(
        self,
        customer_id: UUID,
        send: Callable[[PortalAccount, str, str, datetime], datetime],
        idempotency: Idempotency | None,
    ) -> Receipt:
        def attempt() -> Change:
            customer: Customer = self.load(customer_id, Customer, None)
            if customer.erased:
                raise ConflictError("customer is erased", field="erased")
            if customer.deleted:
                raise ConflictError("customer is deleted; restore it first", field="deleted")
            if customer.merged_into is not None:
                raise MergedCustomerError(customer.id, customer.merged_into)
            if customer.blocked:
                raise ConflictError("a blocked customer cannot use the portal", field="blocked")
            if not (customer.profile.email or customer.profile.username):
                raise ConflictError(
                    "the customer needs an email or a username to log in with", field="email"
                )
            account = portal_account_of(self, customer_id) or PortalAccount.open(customer_id)
            # The token names the account's own customer: the link finds it by that id.
            token = new_token(account.opened_for)
            expires_at = send(account, token, self.sealer.seal(token), self.clock())
            result: dict[str, Any] = {"customer_id": customer_id, "expires_at": expires_at}
            return Change(account.id, account.version, result, [account])

        return self.execute(attempt, idempotency, key=portal_account_id(customer_id))

    def _account(self, customer_id: UUID) -> PortalAccount | None:
        try:
            account: PortalAccount = self.repository.get(portal_account_id(customer_id))
        except AggregateNotFoundError:
            return None
        return account

    def _login_owner(self, login: str) -> UUID | None:
        """The customer whose email, else whose username, `login` is."""
        login = login.strip()
        candidates = [reservation_id("username", login)] if login else []
        with contextlib.suppress(RuleViolationError):  # not an email: a username only
            candidates.insert(0, reservation_id("email", normalise_email(login)))
        for candidate in candidates:
            try:
                reservation: Reservation = self.repository.get(candidate)
            except AggregateNotFoundError:
                continue
            if reservation.owner_id is not None:
                return reservation.owner_id
        return None


def portal_account_of(service: WritePath, customer_id: UUID) -> PortalAccount | None:
    """The customer's open portal account: its own, else one a merge moved to it from a
    customer merged into it (through chains of merges); None without one."""
    pending, seen = [customer_id], set()
    while pending:
        holder = pending.pop(0)
        if holder in seen:
            continue
        seen.add(holder)
        try:
            account: PortalAccount = service.repository.get(portal_account_id(holder))
        except AggregateNotFoundError:
            pass
        else:
            if account.customer_id == customer_id and account.closed_by is None:
                return account
        customer: Customer = service.load(holder, Customer, None)
        pending += [merged for sources in customer.merges.values() for merged in sources]
    return None
