"""A Hypothesis state machine of one customer's life, against a simple model of it.

Each rule runs one command against a simple model of what should happen. A command the
model finds no reason to refuse must succeed; a refused one must be refused for one of
the reasons the model found (type and field), and must change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.customers import Customer
from domain.errors import (
    ConflictError,
    DomainError,
    ImmutableFieldError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.sealing import SecretSealer
from domain.service import CustomerService, Receipt
from domain.write_path import Change

SETTINGS = settings(max_examples=50, stateful_step_count=30, deadline=None)

Reason = tuple[type[DomainError], str | None]

# Typed value -> stored value (None: the value is invalid and must be refused).
EMAILS = {
    "ann@example.com": "ann@example.com",
    "ANN@Example.COM": "ANN@example.com",
    "bob@example.org": "bob@example.org",
    "not-an-email": None,
}
MOBILES = {
    "(415) 555-2671": "+14155552671",
    "+1 415 555 2671": "+14155552671",
    "415.555.2672": "+14155552672",
    "12345": None,
}
PHONES = {"415 555 2673": "+14155552673", "1": None}
USERNAMES = ["ann", "ANN", "bob"]
STAFF = ["s1", "s2", "s3"]
SECRET = "hunter2-"
"""Every generated secret starts with this, so the store can be searched for it in clear."""
UNKNOWN_PART = UUID(int=0)


class RecordingService(CustomerService):
    """Remembers the live customer objects it saved, to compare them with their replay."""

    def __init__(self) -> None:
        super().__init__(sealer=SecretSealer(SecretSealer.generate_key()))
        self.live: dict[UUID, Customer] = {}

    def execute(self, attempt: Callable[[], Change], idempotency: Any, **kwargs: Any) -> Receipt:
        def remembering() -> Change:
            change = attempt()
            for obj in change.to_save:
                if isinstance(obj, Customer):
                    self.live[obj.id] = obj
            return change

        return super().execute(remembering, idempotency, **kwargs)


def state_of(customer: Customer) -> dict[str, Any]:
    return {k: v for k, v in vars(customer).items() if k != "_pending_events"}


def folded(service: CustomerService, customer_id: UUID) -> Customer:
    """The customer rebuilt by folding its recorded events with `mutate`."""
    state: Any = None
    for event in service.customer_events(customer_id):
        state = event.mutate(state)
    assert isinstance(state, Customer)
    return state


def outcome(command: Callable[[], Receipt], reasons: set[Reason]) -> Receipt | None:
    """Run a command: it succeeds when no reason to refuse it exists, else fails for one of them."""
    try:
        receipt = command()
    except DomainError as error:
        assert reasons, f"refused without a reason: {error!r}"
        assert (type(error), error.field) in reasons, f"{error!r} is none of {reasons}"
        return None
    assert not reasons, f"accepted although {reasons}"
    return receipt


def optional(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.sampled_from(values))


PROFILE_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "last_name": optional(["Lee", "Li", "O'Neil"]),
        "email": optional(list(EMAILS)),
        "mobile_phone": optional(list(MOBILES)),
        "username": optional(USERNAMES),
        "assigned_staff_ids": st.one_of(
            st.lists(st.sampled_from(STAFF), max_size=3, unique=True),
            st.sampled_from([["s1", "s1"], ["s2", "s3", "s2"]]),
        ),
        "discount_percent": st.one_of(st.none(), st.decimals(-5, 105, places=0)),
        "newsletter": st.booleans(),
        "promotional_sms": st.booleans(),
        "birthday": st.one_of(st.none(), st.dates(date(1930, 1, 1), date(2010, 12, 31))),
        "custom_fields": st.dictionaries(
            st.sampled_from(["gate", "dog"]), st.sampled_from(["1234", "yes"]), max_size=2
        ),
    },
)
AMOUNTS = st.decimals(-5, 50, places=2)


class CustomerLife(RuleBasedStateMachine):
    """One customer through registration, profile changes, parts, blocks and deletions."""

    def __init__(self) -> None:
        super().__init__()
        self.service = RecordingService()
        self.customer_id = uuid4()
        self.version = 0
        self.deleted = self.blocked = False
        self.block_reason: str | None = None
        self.deleted_at_version = 0
        self.profile: dict[str, Any] = {}
        self.first_username: str | None = None
        self.consents = 0
        self.notes: dict[UUID, tuple[str, bool]] = {}
        self.contacts: dict[UUID, str | None] = {}
        self.addresses: dict[UUID, str] = {}
        self.systems: dict[UUID, tuple[str | None, str | None]] = {}
        """system id -> (clear secret, version)."""
        self.key: tuple[str, str | None] | None = None
        self.prices: dict[str, Decimal] = {}
        self.credits: list[Decimal] = []

    # ---- helpers -------------------------------------------------------------------------

    def deleted_reason(self) -> set[Reason]:
        return {(ConflictError, "deleted")} if self.deleted else set()

    def accepted(self, receipt: Receipt | None, events: int) -> None:
        if receipt is not None:
            self.version += events
            assert receipt.version == self.version

    def pick(self, data: st.DataObject, parts: dict[UUID, Any]) -> UUID:
        return data.draw(st.sampled_from([*sorted(parts), UNKNOWN_PART]))

    def remove(self, command: Callable[..., Receipt], parts: dict[UUID, Any], part: UUID) -> None:
        reasons = self.deleted_reason()
        if part not in parts:
            reasons.add((NotFoundError, None))
        receipt = outcome(
            lambda: command(self.customer_id, part, expected_version=self.version), reasons
        )
        if receipt is not None:
            del parts[part]
        self.accepted(receipt, 1)

    # ---- registration and profile --------------------------------------------------------

    @initialize(
        email=optional([e for e, stored in EMAILS.items() if stored]),
        mobile_phone=optional([m for m, stored in MOBILES.items() if stored]),
        username=optional(USERNAMES),
        staff=st.lists(st.sampled_from(STAFF), max_size=2, unique=True),
        newsletter=st.booleans(),
    )
    def register(
        self,
        email: str | None,
        mobile_phone: str | None,
        username: str | None,
        staff: list[str],
        newsletter: bool,
    ) -> None:
        receipt = self.service.register_customer(
            {
                "first_name": "Ann",
                "email": email,
                "mobile_phone": mobile_phone,
                "username": username,
                "assigned_staff_ids": staff,
                "newsletter": newsletter,
            }
        )
        self.customer_id = receipt.aggregate_id
        self.version = receipt.version
        self.profile = {
            "last_name": None,
            "email": EMAILS[email] if email else None,
            "mobile_phone": MOBILES[mobile_phone] if mobile_phone else None,
            "username": username,
            "assigned_staff_ids": tuple(staff),
            "discount_percent": None,
            "newsletter": newsletter,
            "promotional_sms": False,
            "birthday": None,
            "custom_fields": {},
        }
        self.first_username = username
        self.consents = 2

    @rule(changes=PROFILE_CHANGES)
    def change_profile(self, changes: dict[str, Any]) -> None:
        reasons = self.deleted_reason()
        new: dict[str, Any] = {}
        for name, value in changes.items():
            pool = {"email": EMAILS, "mobile_phone": MOBILES}.get(name)
            if pool is not None and value is not None:
                if pool[value] is None:
                    reasons.add((RuleViolationError, name))
                    continue
                value = pool[value]
            new[name] = tuple(value) if isinstance(value, list) else value
        changed = {k: v for k, v in new.items() if self.profile[k] != v}
        current_username = self.profile["username"]
        if (
            "username" in changed
            and current_username is not None
            and (changed["username"] or "").casefold() != current_username.casefold()
        ):
            reasons.add((ImmutableFieldError, "username"))
        staff = changed.get("assigned_staff_ids", self.profile["assigned_staff_ids"])
        if len(staff) > 2 or len(set(staff)) != len(staff):
            reasons.add((RuleViolationError, "assigned_staff_ids"))
        discount = changed.get("discount_percent")
        if discount is not None and not 0 <= discount <= 100:
            reasons.add((RuleViolationError, "discount_percent"))
        receipt = outcome(
            lambda: self.service.change_profile(
                self.customer_id, changes, expected_version=self.version
            ),
            reasons,
        )
        if receipt is None:
            return
        consents = [t for t in ("newsletter", "promotional_sms") if t in changed]
        plain = set(changed) - set(consents)
        self.profile.update(changed)
        self.consents += len(consents)
        if self.first_username is None:
            self.first_username = self.profile["username"]
        self.accepted(receipt, len(consents) + (1 if plain else 0))

    @rule(stale=st.booleans())
    def change_profile_on_a_stale_version(self, stale: bool) -> None:
        version = self.version - 1 if stale else self.version
        reasons: set[Reason] = {(VersionMismatchError, None)} if stale else self.deleted_reason()
        new_name = "Stale" if self.profile["last_name"] != "Stale" else "Fresh"
        receipt = outcome(
            lambda: self.service.change_profile(
                self.customer_id, {"last_name": new_name}, expected_version=version
            ),
            reasons,
        )
        if receipt is not None:
            self.profile["last_name"] = new_name
        self.accepted(receipt, 1)

    # ---- lifecycle -----------------------------------------------------------------------

    @rule()
    def delete(self) -> None:
        receipt = outcome(
            lambda: self.service.delete_customer(self.customer_id, expected_version=self.version),
            self.deleted_reason(),
        )
        self.accepted(receipt, 1)
        if receipt is not None:
            self.deleted, self.deleted_at_version = True, self.version

    @rule()
    def restore(self) -> None:
        reasons: set[Reason] = set() if self.deleted else {(ConflictError, "deleted")}
        receipt = outcome(
            lambda: self.service.restore_customer(self.customer_id, expected_version=self.version),
            reasons,
        )
        self.accepted(receipt, 1)
        if receipt is not None:
            self.deleted = False

    @rule(reason=optional(["unpaid", "abusive"]))
    def block(self, reason: str | None) -> None:
        reasons = self.deleted_reason()
        if self.blocked:
            reasons.add((ConflictError, "blocked"))
        receipt = outcome(
            lambda: self.service.block_customer(
                self.customer_id, reason, expected_version=self.version
            ),
            reasons,
        )
        self.accepted(receipt, 1)
        if receipt is not None:
            self.blocked, self.block_reason = True, reason

    @rule()
    def unblock(self) -> None:
        reasons = self.deleted_reason()
        if not self.blocked:
            reasons.add((ConflictError, "blocked"))
        receipt = outcome(
            lambda: self.service.unblock_customer(self.customer_id, expected_version=self.version),
            reasons,
        )
        self.accepted(receipt, 1)
        if receipt is not None:
            self.blocked, self.block_reason = False, None

    # ---- parts ---------------------------------------------------------------------------

    @rule(text=st.sampled_from(["call first", "dog on site", "  "]), urgent=st.booleans())
    def add_note(self, text: str, urgent: bool) -> None:
        reasons = self.deleted_reason()
        if not text.strip():
            reasons.add((RuleViolationError, "text"))
        receipt = outcome(lambda: self.service.add_note(self.customer_id, text, urgent), reasons)
        if receipt is not None:
            self.notes[receipt.result["note_id"]] = (text, urgent)
        self.accepted(receipt, 1)

    @rule(data=st.data())
    def remove_note(self, data: st.DataObject) -> None:
        self.remove(self.service.remove_note, self.notes, self.pick(data, self.notes))

    @rule(name=st.sampled_from(["Bo", " "]), phone=optional(list(PHONES)))
    def add_contact(self, name: str, phone: str | None) -> None:
        reasons = self.deleted_reason()
        if not name.strip():
            reasons.add((RuleViolationError, "name"))
        if phone is not None and PHONES[phone] is None:
            reasons.add((RuleViolationError, "phone"))
        receipt = outcome(
            lambda: self.service.add_contact(self.customer_id, {"name": name, "phone": phone}),
            reasons,
        )
        if receipt is not None:
            self.contacts[receipt.result["contact_id"]] = PHONES[phone] if phone else None
        self.accepted(receipt, 1)

    @rule(data=st.data())
    def remove_contact(self, data: st.DataObject) -> None:
        self.remove(self.service.remove_contact, self.contacts, self.pick(data, self.contacts))

    @rule(
        kind=st.sampled_from(["delivery", "billing", "site", "holiday"]),
        line1=st.sampled_from(["1 Main St", " "]),
    )
    def add_address(self, kind: str, line1: str) -> None:
        reasons = self.deleted_reason()
        if kind == "holiday":
            reasons.add((RuleViolationError, "kind"))
        if not line1.strip():
            reasons.add((RuleViolationError, "line1"))
        receipt = outcome(
            lambda: self.service.add_address(self.customer_id, {"kind": kind, "line1": line1}),
            reasons,
        )
        if receipt is not None:
            self.addresses[receipt.result["address_id"]] = kind
        self.accepted(receipt, 1)

    @rule(data=st.data())
    def remove_address(self, data: st.DataObject) -> None:
        self.remove(self.service.remove_address, self.addresses, self.pick(data, self.addresses))

    @rule(
        system_type=st.sampled_from(["alarm", "cctv", " "]),
        secret=optional(["", SECRET + "a", SECRET + "b"]),
    )
    def install_system(self, system_type: str, secret: str | None) -> None:
        reasons = self.deleted_reason()
        if not system_type.strip():
            reasons.add((RuleViolationError, "system_type"))
        fields = {"system_type": system_type} | ({} if secret is None else {"secret": secret})
        receipt = outcome(lambda: self.service.install_system(self.customer_id, fields), reasons)
        if receipt is not None:
            self.systems[receipt.result["system_id"]] = (secret or None, None)
        self.accepted(receipt, 1)

    @rule(
        data=st.data(),
        version=optional(["1.0", "2.0"]),
        secret=optional(["", SECRET + "c"]),
    )
    def change_system(self, data: st.DataObject, version: str | None, secret: str | None) -> None:
        system_id = self.pick(data, self.systems)
        reasons = self.deleted_reason()
        if system_id not in self.systems:
            reasons.add((NotFoundError, None))
        changes: dict[str, Any] = {"version": version}
        if secret is not None:
            changes["secret"] = secret
        receipt = outcome(
            lambda: self.service.change_system(
                self.customer_id, system_id, changes, expected_version=self.version
            ),
            reasons,
        )
        if receipt is None:
            return
        old_secret, old_version = self.systems[system_id]
        new_secret = old_secret if secret is None else (secret or None)
        # A new secret is sealed afresh (a new nonce), so it always differs from the stored one.
        differs = version != old_version or bool(secret) or (secret == "" and old_secret)
        self.systems[system_id] = (new_secret, version)
        self.accepted(receipt, 1 if differs else 0)

    @rule(data=st.data())
    def remove_system(self, data: st.DataObject) -> None:
        self.remove(self.service.remove_system, self.systems, self.pick(data, self.systems))

    @rule(holder=st.sampled_from(["s1", "s2", " "]), location=optional(["safe", "office"]))
    def hand_keys_to(self, holder: str, location: str | None) -> None:
        reasons = self.deleted_reason()
        if not holder.strip():
            reasons.add((RuleViolationError, "holder_staff_id"))
        receipt = outcome(
            lambda: self.service.hand_keys_to(self.customer_id, holder, location), reasons
        )
        if receipt is not None:
            differs = self.key != (holder, location)
            self.key = (holder, location)
            self.accepted(receipt, 1 if differs else 0)

    @rule(service_id=st.sampled_from(["svc-1", "svc-2"]), price=AMOUNTS)
    def set_custom_price(self, service_id: str, price: Decimal) -> None:
        reasons = self.deleted_reason()
        if price < 0:
            reasons.add((RuleViolationError, "price"))
        receipt = outcome(
            lambda: self.service.set_custom_price(self.customer_id, service_id, price), reasons
        )
        if receipt is not None:
            differs = self.prices.get(service_id) != price
            if differs:
                self.prices[service_id] = price
            self.accepted(receipt, 1 if differs else 0)

    @rule(amount=AMOUNTS, reason=st.sampled_from(["goodwill", " "]))
    def add_credit(self, amount: Decimal, reason: str) -> None:
        reasons = self.deleted_reason()
        if amount <= 0:
            reasons.add((RuleViolationError, "amount"))
        if not reason.strip():
            reasons.add((RuleViolationError, "reason"))
        receipt = outcome(
            lambda: self.service.add_credit(self.customer_id, amount, reason), reasons
        )
        if receipt is not None:
            self.credits.append(amount)
        self.accepted(receipt, 1)

    # ---- invariants ----------------------------------------------------------------------

    def customer(self) -> Customer:
        return self.service.get_customer(self.customer_id)

    @invariant()
    def the_customer_is_as_the_model_expects(self) -> None:
        customer = self.customer()
        assert customer.version == self.version
        assert (customer.deleted, customer.blocked) == (self.deleted, self.blocked)
        assert customer.block_reason == self.block_reason
        assert {k: getattr(customer.profile, k) for k in self.profile} == self.profile
        assert len(customer.consents) == self.consents
        assert {i: (n.text, n.urgent) for i, n in customer.notes.items()} == self.notes
        assert {i: c.phone for i, c in customer.contacts.items()} == self.contacts
        assert {i: a.kind for i, a in customer.addresses.items()} == self.addresses
        assert customer.custom_prices == self.prices
        custody = customer.key_custody
        assert (custody and (custody.holder_staff_id, custody.location)) == self.key

    @invariant()
    def system_secrets_are_sealed_and_unseal_to_what_was_given(self) -> None:
        systems = self.customer().systems
        assert set(systems) == set(self.systems)
        for system_id, (secret, version) in self.systems.items():
            sealed = systems[system_id].sealed_secret
            assert (
                self.service.unseal_secret(self.customer().id, sealed) if sealed else None
            ) == secret
            assert systems[system_id].version == version
        stored = self.service.recorder.select_notifications(start=1, limit=10_000)
        assert not any(SECRET.encode() in n.state for n in stored)

    @invariant()
    def never_more_than_two_assigned_staff(self) -> None:
        assert len(self.customer().profile.assigned_staff_ids) <= 2

    @invariant()
    def the_username_never_changes_once_set(self) -> None:
        username = self.customer().profile.username
        if self.first_username is not None:
            assert username is not None
            assert username.casefold() == self.first_username.casefold()

    @invariant()
    def a_deleted_customer_accepted_no_change(self) -> None:
        if self.deleted:
            assert self.customer().version == self.deleted_at_version

    @invariant()
    def the_credit_balance_is_the_sum_of_the_credits(self) -> None:
        assert self.customer().credit_balance == sum(self.credits, Decimal(0))

    @invariant()
    def replaying_the_recorded_events_gives_the_live_state(self) -> None:
        live = self.service.live[self.customer_id]
        loaded: Customer = self.service.repository.get(self.customer_id)
        assert state_of(loaded) == state_of(live)
        assert state_of(folded(self.service, self.customer_id)) == state_of(live)


CustomerLife.TestCase.settings = SETTINGS
TestCustomerLife = CustomerLife.TestCase
