"""What a merge does to portal accounts, as a user who logs in expects.

The merged customer's email logs in to the survivor's account. The merged customer's own
account moves to the survivor when the survivor has none (its password keeps working);
when the survivor has one, the merged one is closed, naming why, and its links stop
working. Undoing the merge moves it back, or reopens it, password and all.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from argon2 import profiles

from domain.errors import MergedCustomerError
from domain.passwords import PasswordHasher
from domain.portal import InvalidCredentialsError, InvalidTokenError, PortalAccount
from domain.portal import portal_account_id as account_id
from domain.sealing import SecretSealer
from domain.service import CustomerService, Receipt


@pytest.fixture
def service() -> CustomerService:
    return CustomerService(
        sealer=SecretSealer(SecretSealer.generate_key()),
        password_hasher=PasswordHasher(profiles.CHEAPEST),
    )


def with_password(service: CustomerService, name: str, password: str | None) -> UUID:
    """A customer with an email; with a portal password unless `password` is None."""
    fields = {"first_name": name, "email": f"{name}@example.com"}
    customer = service.register_customer(fields).aggregate_id
    if password is not None:
        service.invite_to_portal(customer)
        service.set_portal_password(link_token(service, customer), password)
    return customer


def link_token(service: CustomerService, opened_for: UUID) -> str:
    events = list(service.events.get(account_id(opened_for)))
    sent = [e for e in events if isinstance(e, PortalAccount.Invited)]
    return service.sealer.unseal(sent[-1].sealed_token)


def merge(service: CustomerService, survivor: UUID, merged: UUID) -> Receipt:
    versions = {i: service.get_customer(i).version for i in (survivor, merged)}
    return service.merge_customers(survivor, [merged], expected_versions=versions)


def unmerge(service: CustomerService, survivor: UUID, merge_id: UUID) -> Receipt:
    version = service.get_customer(survivor).version
    return service.unmerge_customers(survivor, merge_id, expected_version=version)


def account(service: CustomerService, opened_for: UUID) -> PortalAccount:
    found = service.repository.get(account_id(opened_for))
    assert isinstance(found, PortalAccount)
    return found


def test_the_merged_customer_s_account_moves_to_a_survivor_without_one(
    service: CustomerService,
) -> None:
    survivor, merged = (
        with_password(service, "sam", None),
        with_password(service, "max", "pw-max-secret-1"),
    )
    receipt = merge(service, survivor, merged)
    assert receipt.result["moved"][str(merged)]["portal_accounts"] == [account_id(merged)]
    # Both emails are the survivor's logins now, with the password the account had.
    for login in ("max@example.com", "sam@example.com"):
        assert service.authenticate_customer(login, "pw-max-secret-1") == survivor
    # An invite to the survivor renews the moved account: no second account.
    service.invite_to_portal(survivor)
    assert account(service, merged).token_hash is not None
    assert not service.existing_ids([account_id(survivor)])

    back = unmerge(service, survivor, receipt.result["merge_id"])
    assert back.result["moved_back"][str(merged)]["portal_accounts"] == [account_id(merged)]
    assert service.authenticate_customer("max@example.com", "pw-max-secret-1") == merged
    with pytest.raises(InvalidCredentialsError):
        service.authenticate_customer("sam@example.com", "pw-max-secret-1")


def test_with_an_account_on_both_sides_the_survivor_s_is_kept_and_the_other_closed(
    service: CustomerService,
) -> None:
    survivor = with_password(service, "ann", "pw-ann-secret-1")
    merged = with_password(service, "anne", "pw-anne-secret-1")
    service.invite_to_portal(merged)  # a link still out when the merge comes
    token = link_token(service, merged)
    receipt = merge(service, survivor, merged)
    moved = receipt.result["moved"][str(merged)]
    assert (moved["portal_accounts"], moved["closed_portal_accounts"]) == ([], [account_id(merged)])
    closed = account(service, merged)
    assert closed.customer_id == merged and closed.closed_by == receipt.result["merge_id"]
    assert str(account_id(survivor)) in (closed.closed_reason or "")
    # The merged email opens the survivor's account, with the survivor's password only.
    assert service.authenticate_customer("anne@example.com", "pw-ann-secret-1") == survivor
    with pytest.raises(InvalidCredentialsError):
        service.authenticate_customer("anne@example.com", "pw-anne-secret-1")
    with pytest.raises(InvalidTokenError):
        service.set_portal_password(token, "pw-anne-secret-2")

    back = unmerge(service, survivor, receipt.result["merge_id"])
    assert back.result["moved_back"][str(merged)]["closed_portal_accounts"] == [account_id(merged)]
    assert account(service, merged).closed_by is None
    assert service.authenticate_customer("anne@example.com", "pw-anne-secret-1") == merged
    service.set_portal_password(token, "pw-anne-secret-2")  # the link works again while valid
    assert service.authenticate_customer("anne@example.com", "pw-anne-secret-2") == merged


def test_two_merged_accounts_into_a_survivor_without_one_the_first_moves(
    service: CustomerService,
) -> None:
    survivor = with_password(service, "bea", None)
    first, second = (
        with_password(service, "bo", "pw-bo-secret-1"),
        with_password(service, "bob", "pw-b-secret-1"),
    )
    versions = {i: service.get_customer(i).version for i in (survivor, first, second)}
    receipt = service.merge_customers(survivor, [first, second], expected_versions=versions)
    moved = receipt.result["moved"]
    assert moved[str(first)]["portal_accounts"] == [account_id(first)]
    assert moved[str(second)]["closed_portal_accounts"] == [account_id(second)]
    assert service.authenticate_customer("bob@example.com", "pw-bo-secret-1") == survivor


def test_an_account_moved_twice_through_a_chain_of_merges_still_logs_in(
    service: CustomerService,
) -> None:
    a, b, c = (with_password(service, n, None) for n in ("cy", "cyd", "cyra"))
    service.invite_to_portal(a)
    service.set_portal_password(link_token(service, a), "pw-cy-secret-1")
    first = merge(service, b, a)
    merge(service, c, b)
    assert service.authenticate_customer("cy@example.com", "pw-cy-secret-1") == c
    assert account(service, a).customer_id == c
    unmerge(service, c, service.get_customer(c).merges.popitem()[0])
    assert service.authenticate_customer("cy@example.com", "pw-cy-secret-1") == b
    unmerge(service, b, first.result["merge_id"])
    assert service.authenticate_customer("cy@example.com", "pw-cy-secret-1") == a


def test_a_tombstone_is_not_invited(service: CustomerService) -> None:
    survivor, merged = with_password(service, "dan", None), with_password(service, "dana", None)
    merge(service, survivor, merged)
    with pytest.raises(MergedCustomerError) as refused:
        service.invite_to_portal(merged)
    assert refused.value.survivor_id == survivor
