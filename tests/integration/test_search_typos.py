"""What a typo'd search word matches: a customer with ONE word one typo from it (a letter
wrong, missing or added, two letters swapped), best first."""
# ruff: noqa: F401, F811 (fixtures imported from test_search_model, used as parameters)

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql
from tests.integration.test_search_model import (
    OpenModel,
    Stack,
    follow_to_head,
    open_model,
    search,
    stack,
)

from domain.service import CustomerService
from infrastructure.eventstore import read_model_datastore
from projections.rebuild import rebuild
from projections.search import SearchModel
from projections.search_query import TRGM_SCHEMA_QUERY
from projections.search_words import deletions_of


def register(service: CustomerService, first: str, last: str, **more: Any) -> UUID:
    return service.register_customer({"first_name": first, "last_name": last, **more}).aggregate_id


def ids(stack: Stack, model: Any, q: str) -> list[UUID]:
    return [row["id"] for row in search(stack, model, q=q)]


def test_a_typo_matches_a_close_word_not_letters_spread_over_several_words(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    spread = register(service, "Renee", "Caisulberg", company_name="Delta Motors")
    near = register(service, "Ann", "Delcaberg")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "Delnaberg") == [near]
    assert spread not in ids(stack, model, "Delnaberg")


def test_one_letter_wrong_swapped_or_missing_in_a_surname_finds_the_person(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    lovelace = register(service, "Ada", "Lovelace")
    register(service, "Bob", "Pemberton")
    model = open_model()
    follow_to_head(stack, model)
    for typo in ("Lovelase", "Lovleace", "Lovelce", "Loveleace"):
        assert ids(stack, model, typo) == [lovelace], typo


def test_every_word_of_a_query_must_match_one_of_them_a_typo(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    jon = register(service, "Jon", "Smith")
    register(service, "Ann", "Smith")
    register(service, "Jon", "Baker")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "jon smiht") == [jon]
    assert ids(stack, model, "smiht jon") == [jon]


def test_of_the_words_one_typo_away_the_closer_ranks_first_and_two_away_are_not_found(
    stack: Stack, open_model: OpenModel
) -> None:
    """ "Hartwelling" is 0.31 from "Hertwell" by trigrams, and was found until typos were
    one edit: it is four, a different name."""
    service = stack[1]
    farther = register(service, "Ada", "Hartwelling")
    closer = register(service, "Ada", "Hartwell")
    closest = register(service, "Ada", "Hertwel")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "Hartwel")[:1] == [closer]  # a word start: its own tier
    assert ids(stack, model, "Hertwell") == [closest, closer]
    assert farther not in ids(stack, model, "Hertwell")


def test_one_typo_of_a_four_letter_word_finds_it_however_few_trigrams_are_left(
    stack: Stack, open_model: OpenModel
) -> None:
    """ "jonh" shares 0.25 of "john"'s trigrams, under the 0.3 that the trigram probe needed."""
    service = stack[1]
    john = register(service, "John", "Baker")
    smyth = register(service, "Ann", "Smyth")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "jonh") == [john]  # swapped
    assert ids(stack, model, "johnn") == [john]  # a letter added
    assert ids(stack, model, "smth") == [smyth]  # a letter missing
    assert ids(stack, model, "smith") == [smyth]  # a letter wrong
    assert ids(stack, model, "smyht") == [smyth]  # swapped at the end


def test_words_under_four_letters_are_never_looked_for_as_typos(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    register(service, "Jon", "Kay")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "jom") == []
    assert ids(stack, model, "kya") == []


def test_a_changed_name_is_found_by_its_new_words_only_and_erasure_leaves_no_word(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    shared = register(service, "Ada", "Quimbleton")
    mine = register(service, "Zed", "Quimbleton", company_name="Vortigan Works")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "Vortigen") == [mine]
    service.change_profile(mine, {"company_name": "Elsewhere"}, expected_version=1)
    follow_to_head(stack, model)
    assert ids(stack, model, "Vortigen") == []
    assert {"quimbleton", "elsewhere"} <= vocabulary(model)
    assert "vortigan" not in vocabulary(model)
    assert deletions(model) == expected_deletions(model)
    service.erase_customer(mine, expected_version=2)
    follow_to_head(stack, model)
    words = vocabulary(model)
    assert "elsewhere" not in words and "zed" not in words
    assert deletions(model) == expected_deletions(model)
    assert not {"elsewhere", "elsewher", "lsewhere"} & {d for d, _ in deletions(model)}
    assert "quimbleton" in words  # another customer's word still
    assert counted(model, "quimbleton") == 1
    assert ids(stack, model, "Quimbelton") == [shared]
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sql.SQL("SELECT count(*) AS n FROM {} WHERE id = %s").format(
                model.table("customer_words")
            ),
            (mine,),
        )
        assert cursor.fetchone()["n"] == 0


def vocabulary(model: Any) -> set[str]:
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(sql.SQL("SELECT word FROM {}").format(model.table("search_words")))
        return {row["word"] for row in cursor.fetchall()}


def deletions(model: Any) -> set[tuple[str, str]]:
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sql.SQL("SELECT deletion, word FROM {}").format(model.table("search_word_deletions"))
        )
        return {(row["deletion"], row["word"]) for row in cursor.fetchall()}


def expected_deletions(model: Any) -> set[tuple[str, str]]:
    """Every deletion of every vocabulary word, and nothing else."""
    return {(deletion, word) for word in vocabulary(model) for deletion in deletions_of(word)}


def test_the_migration_fills_the_deletions_of_the_words_already_there(
    stack: Stack, open_model: OpenModel
) -> None:
    """Migration 0005 back-fills in SQL what the follower computes in Python, letters
    beyond ASCII too (it counts characters, not bytes)."""
    service = stack[1]
    register(service, "Σοφία", "Lovelace", company_name="Straße Works")
    register(service, "Ada", "Lovelace")
    model = open_model()
    follow_to_head(stack, model)
    kept = deletions(model)
    assert ("σοφα", "σοφια") in kept
    with model.datastore.transaction(commit=True) as cursor:
        # Back to where migration 0004 left the schema.
        cursor.execute(sql.SQL("DROP TABLE {}").format(model.table("search_word_deletions")))
        cursor.execute(TRGM_SCHEMA_QUERY)
        trgm = sql.Identifier(cursor.fetchone()["schema"], "gin_trgm_ops")
        cursor.execute(
            sql.SQL("CREATE INDEX search_words_trgm_idx ON {} USING gin (word {})").format(
                model.table("search_words"), trgm
            )
        )
        cursor.execute(
            sql.SQL("DELETE FROM {} WHERE version = 'search/0005_word_deletions.sql'").format(
                model.table("schema_migrations")
            )
        )
    model.migrate()
    assert deletions(model) == kept == expected_deletions(model)


def test_a_word_s_deletions_come_and_go_with_it(stack: Stack, open_model: OpenModel) -> None:
    service = stack[1]
    first = register(service, "Ada", "Quorvel")
    second = register(service, "Bob", "Quorvel")
    model = open_model()
    follow_to_head(stack, model)
    assert ("quorel", "quorvel") in deletions(model)
    service.erase_customer(first, expected_version=1)
    follow_to_head(stack, model)
    assert ("quorel", "quorvel") in deletions(model)  # Bob's word still
    service.change_profile(second, {"last_name": "Quarvel"}, expected_version=1)
    follow_to_head(stack, model)
    assert {word for _, word in deletions(model)} == {"quarvel"}
    assert deletions(model) == expected_deletions(model)


def test_a_rebuild_makes_the_deletions_of_the_words_its_vocabulary_ends_with(
    stack: Stack, open_model: OpenModel
) -> None:
    """A rebuilt model holds the same deletions as the live one, each exactly those of its
    vocabulary: words that came and went, and letters beyond ASCII, too."""
    settings, service = stack
    register(service, "Σοφία", "Quorvel")
    renamed = register(service, "Bob", "Quorvel")
    erased = register(service, "Cleo", "Zamfirova")
    service.change_profile(renamed, {"last_name": "Quarvel"}, expected_version=1)
    service.erase_customer(erased, expected_version=1)
    live = open_model()
    follow_to_head(stack, live)
    kept = deletions(live)
    assert ("σοφα", "σοφια") in kept and ("quarel", "quarvel") in kept
    rebuild(
        service, lambda schema: SearchModel(read_model_datastore(settings, schema)), live.schema
    )
    assert deletions(live) == kept == expected_deletions(live)


def counted(model: Any, word: str) -> int:
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sql.SQL("SELECT customers FROM {} WHERE word = %s").format(model.table("search_words")),
            (word,),
        )
        return int(cursor.fetchone()["customers"])


def test_the_same_letters_swapped_rank_above_a_wrong_letter_and_two_typos_are_not_found(
    stack: Stack, open_model: OpenModel
) -> None:
    """A swap breaks more trigrams than a wrong letter: "korslaird" shares more of
    "korslaard"'s (0.54) than "korsalard" (0.43), but "korsalard" has its letters, so it is
    the likelier typo. "Korsalcaard" (0.47) was found until typos were one edit: it is two."""
    service = stack[1]
    swapped = register(service, "Ada", "Korsalard")
    wrong = register(service, "Cy", "Korslaird")
    register(service, "Bob", "Korsalcaard")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "Korslaard") == [swapped, wrong]


def test_a_full_name_someone_has_as_typed_lists_no_typos_of_it(
    stack: Stack, open_model: OpenModel
) -> None:
    """Looking for typos of a name found as typed was half of a full name's time at a
    million customers, for rows that are other people ("Marc" for "Mark")."""
    service = stack[1]
    mark = register(service, "Mark", "Lovtorson")
    marc = register(service, "Marc", "Lovtorson")
    cousin = register(service, "Mark", "Lovtorsen")
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "Mark Lovtorson") == [mark]
    assert set(ids(stack, model, "Mark Lovtorsan")) == {mark, cousin}  # nobody's: typos
    assert set(ids(stack, model, "Lovtorson")) == {mark, marc, cousin}  # one word: as before


def test_a_full_name_nobody_has_as_typed_finds_its_typos_even_of_real_words(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    marc = register(service, "Marc", "Lovtorson")
    register(service, "Mark", "Pemberton")  # "mark" is someone's word, not with Lovtorson
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "Mark Lovtorson") == [marc]


def test_a_full_name_only_a_deleted_customer_has_is_looked_for_as_typos(
    stack: Stack, open_model: OpenModel
) -> None:
    service = stack[1]
    gone = register(service, "Mark", "Lovtorson")
    marc = register(service, "Marc", "Lovtorson")
    service.delete_customer(gone, expected_version=1)
    model = open_model()
    follow_to_head(stack, model)
    assert ids(stack, model, "Mark Lovtorson") == [marc]
