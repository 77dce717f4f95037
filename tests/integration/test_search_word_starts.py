"""Word starts, found through the words' index: any word of a customer (the email address
too), listed once, newest first, page after page; a phrase's last word as a word start."""
# ruff: noqa: F401, F811 (fixtures imported from test_search_model, used as parameters)

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from tests.integration.test_search_model import (
    OpenModel,
    Stack,
    follow_to_head,
    open_model,
    search,
    stack,
)

from domain.service import CustomerService
from projections.search import (
    SESSION_SETTINGS,
    TRGM_SCHEMA_QUERY,
    SearchCriteria,
    search_statement,
)


def register(service: CustomerService, first: str, last: str | None = None, **more: Any) -> UUID:
    return service.register_customer({"first_name": first, "last_name": last, **more}).aggregate_id


def ids(stack: Stack, model: Any, q: str) -> list[UUID]:
    return [row["id"] for row in search(stack, model, q=q)]


def pages(stack: Stack, model: Any, q: str, limit: int) -> list[list[UUID]]:
    """Every page of a search, `limit` rows each, as the gateway follows its cursors."""
    settings, _ = stack
    found: list[list[UUID]] = []
    after = None
    with psycopg.connect(settings.database_url or "", row_factory=dict_row) as connection:
        trgm = connection.execute(TRGM_SCHEMA_QUERY).fetchone()
        assert trgm is not None
        while True:
            statement, params = search_statement(
                model.schema, trgm["schema"], SearchCriteria(q=q), after=after, limit=limit + 1
            )
            connection.execute(SESSION_SETTINGS, ("5000",))
            rows = connection.execute(statement, params).fetchall()
            found.append([row["id"] for row in rows[:limit]])
            if len(rows) <= limit:
                return found
            last = rows[limit - 1]
            after = (last["rank"], last["registered_at"], last["id"])


def test_a_word_start_is_any_word_of_the_customer_the_email_address_too(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    named = register(service, "Ada", "Lovelace")
    mailed = register(service, "Bob", "Smith", email="lovelace.fan@example.com")
    company = register(service, "Cy", "Young", company_name="Lovelady Ltd")
    inside = register(service, "Di", "Glovel")
    model = open_model()
    follow_to_head(stack, model)
    # Newest first among the word starts, then a word containing q.
    assert ids(stack, model, "Lovel") == [company, mailed, named, inside]


def test_pages_of_a_word_start_list_every_customer_once_newest_first(
    stack: Stack, open_model: OpenModel
) -> None:
    """Customers with several words starting with q (names and the email address) are
    listed once; the pages walk the whole word-start tier, then the rest."""
    service = stack[1]
    starts = [
        register(service, "Lovelyn", "Lovelace", email=f"lovelyn.lovelace{n}@example.com")
        for n in range(5)
    ]
    starts.append(register(service, "Ada", "Lovelock"))
    inside = register(service, "Di", "Glovelyn")
    whole = register(service, "Bo", "Lovel")
    model = open_model()
    follow_to_head(stack, model)
    found = pages(stack, model, "lovel", limit=2)
    assert [len(page) for page in found] == [2, 2, 2, 2]
    assert [id for page in found for id in page] == [whole, *reversed(starts), inside]


def test_a_phrase_starts_with_its_whole_words_and_a_start_of_the_last(
    stack: Stack, open_model: OpenModel
) -> None:
    """ "ada love": the phrase as whole words first, then the phrase starting a word (the
    last word a word start), then both words anywhere."""
    service = stack[1]
    apart = register(service, "Ada", "Byron", company_name="Lovelace Ltd")
    start = register(service, "Ada", "Lovelace")
    whole = register(service, "Ada", "Love")
    reversed_ = register(service, "Love", "Ada")
    register(service, "Ada", "Byron")
    model = open_model()
    follow_to_head(stack, model)
    found = ids(stack, model, "Ada Love")
    assert found[:2] == [whole, start]
    assert set(found[2:]) == {apart, reversed_}
