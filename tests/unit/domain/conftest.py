"""Fixtures of the domain's unit tests: a service over the library's in-memory store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.customers import Customer
from domain.sealing import SecretSealer
from domain.service import CustomerService


@pytest.fixture
def service() -> CustomerService:
    """A service on the in-memory (POPO) store: no env, so no database."""
    return CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))


@pytest.fixture
def register(service: CustomerService) -> Callable[..., Customer]:
    """Register a customer (first_name defaults to "Ann") and return it as stored."""

    def register(**fields: Any) -> Customer:
        fields.setdefault("first_name", "Ann")
        receipt = service.register_customer(fields)
        return service.get_customer(receipt.aggregate_id)

    return register
