"""The domain's errors: what a command can be refused for.

    DomainError
    ├── NotFoundError              no such aggregate (or not visible to the caller)
    ├── ConflictError              the request clashes with the current state
    │   ├── UniqueValueTakenError  email, phone, username or number already used
    │   ├── InvalidTransitionError a state change the graph does not allow
    │   ├── ImmutableFieldError    e.g. a username once set
    │   └── MergedCustomerError    the customer was merged into another (a tombstone)
    ├── VersionMismatchError       the caller's If-Match is not the current version
    └── RuleViolationError         a value breaks a business rule (422), names the field

The gateway maps each branch to one HTTP status; nothing below the gateway knows HTTP.
"""

from __future__ import annotations

from uuid import UUID

__all__ = [
    "ConflictError",
    "DomainError",
    "ImmutableFieldError",
    "InvalidTransitionError",
    "MergedCustomerError",
    "NotFoundError",
    "RuleViolationError",
    "UniqueValueTakenError",
    "VersionMismatchError",
]


class DomainError(Exception):
    """Base of every refusal the domain can give."""

    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class NotFoundError(DomainError):
    """The aggregate does not exist (or the caller may not know it does)."""

    def __init__(self, kind: str, aggregate_id: UUID | str) -> None:
        super().__init__(f"{kind} {aggregate_id} not found")
        self.kind = kind
        self.aggregate_id = aggregate_id


class ConflictError(DomainError):
    """The command is valid on its own but clashes with the current state."""


class UniqueValueTakenError(ConflictError):
    """A value that must be unique across customers is already reserved."""

    def __init__(self, field: str, holder_id: UUID | None = None) -> None:
        super().__init__(f"{field} is already used by another customer", field=field)
        self.holder_id = holder_id
        """The customer holding the value (an import reports it); never sent to clients."""


class InvalidTransitionError(ConflictError):
    """The state graph has no edge from the current state to the requested one."""

    def __init__(self, current: str, requested: str, allowed: list[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"cannot go from {current} to {requested}; allowed from {current}: {allowed_text}",
            field="status",
        )
        self.current = current
        self.requested = requested
        self.allowed = allowed


class ImmutableFieldError(ConflictError):
    """A field that may be set once was asked to change."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} cannot be changed once set", field=field)


class MergedCustomerError(ConflictError):
    """The customer is a tombstone: it was merged into the survivor, which holds it all now."""

    def __init__(self, customer_id: UUID, survivor_id: UUID, *, field: str = "merged_into") -> None:
        super().__init__(
            f"customer {customer_id} was merged into customer {survivor_id}: use that one",
            field=field,
        )
        self.customer_id = customer_id
        self.survivor_id = survivor_id


class VersionMismatchError(DomainError):
    """The version the caller saw is not the aggregate's current version."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected version {expected}, but the current version is {actual}")
        self.expected = expected
        self.actual = actual


class RuleViolationError(DomainError):
    """A value breaks a business rule (at most two staff, a discount over 100...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
