"""Phone numbers found by their digits: the index is asked for a number's last digits only
(its start, the country and area codes, is in a great many rows), so these pin that what
is found is still every number containing all the digits, and nothing else."""
# ruff: noqa: F401, F811 (fixtures imported from test_search_model, used as parameters)

from __future__ import annotations

from uuid import UUID

from tests.integration.test_search_model import (
    OpenModel,
    Stack,
    follow_to_head,
    open_model,
    search,
    stack,
)

from domain.service import CustomerService


def register(service: CustomerService, first: str, mobile: str) -> UUID:
    return service.register_customer({"first_name": first, "mobile_phone": mobile}).aggregate_id


def found(stack: Stack, model: OpenModel, q: str, *phone_digits: str) -> list[UUID]:
    return [row["id"] for row in search(stack, model, q=q, phone_digits=phone_digits)]


def test_a_number_ending_like_the_query_but_not_containing_it_is_not_found(
    stack: Stack, open_model: OpenModel
) -> None:
    """ "555-0123": "+1 415 655 0123" ends with its last six digits ("550123", what the
    index is asked for) but does not contain all seven."""
    service = stack[1]
    san_francisco = register(service, "Ada", "+1 415 555 0123")
    new_york = register(service, "Grace", "+1 212 555 0123")
    register(service, "Edsger", "+1 415 655 0123")
    register(service, "Barbara", "+1 415 555 0124")
    model = open_model()
    follow_to_head(stack, model)
    assert sorted(found(stack, model, "555-0123", "5550123")) == sorted([san_francisco, new_york])


def test_a_national_number_and_its_e164_form_find_every_number_containing_either_once(
    stack: Stack, open_model: OpenModel
) -> None:
    """The gateway looks for "(415) 555-0123" as typed and as E.164 ("14155550123"): a
    German number containing the national digits is found too, and each customer once."""
    service = stack[1]
    us = register(service, "Ada", "+1 415 555 0123")
    german = register(service, "Grace", "+49 4155 550123")
    register(service, "Barbara", "+1 415 555 0124")
    model = open_model()
    follow_to_head(stack, model)
    listed = found(stack, model, "(415) 555-0123", "4155550123", "14155550123")
    assert sorted(listed) == sorted([us, german])
