"""The one query that searches the search read model, and how it compares text.

`q` is matched three ways, and a customer matching any of them is found:
  - text: every word of `q` is a substring of (LIKE) the normalised first/last name,
    company, DBA name and email, or one typo from ONE word of them (not the email): the
    two words are the same once at most one letter is removed from each (a letter wrong,
    missing or added, two neighbours swapped, or a letter moved), found by the vocabulary's
    deletions (`search_word_deletions`), the customer having that word (`customer_words`).
    Typos are looked for in words of `TYPO_MIN_LENGTH`+ letters only, and for a `q` of
    several words only when no customer the search may list has all of them as whole
    words (a full name found as typed lists no "Marc" for "Mark"; nobody's name as typed,
    it does);
  - phone: the digits of `q` are a substring of the digits of the mobile or other phone,
    whatever formatting either side used;
  - customer number: `q` is the number itself.

Best matches come first. The rank adds 8 for the customer number and 4 for a phone match;
then 3 when `q` is whole words of the record, 2 when a word starts with `q`, or else the
strict word similarity of `q` with the record (at most 1: similarity with whole words, not
with a run of letters across two). Each tier outranks everything below it; ties are
newest first, then by id.

The tiers are also how the query stays fast: it is one UNION ALL branch per tier, best
first, each sorted and limited on its own, so PostgreSQL stops at the first branches that
fill the page. A one-word `q`'s whole-word tier walks that word's `customer_words` entries
newest first (a common first name reads a page of them instead of sorting all); the word
starts are a range of the same key, sorted newest first before any row is read (a
phrase's: the customers with all its words, by the key). The last
tier, the only one that computes similarity, is the rows containing every word plus, per
typo word, the customers of the vocabulary words one typo from it (looked up by equality
with the word's own deletions: a handful of words, ranked by trigram similarity).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from projections.search_words import deletions_of, is_typo_word

__all__ = [
    "LIST_COLUMNS",
    "SESSION_SETTINGS",
    "TRGM_SCHEMA_QUERY",
    "SearchCriteria",
    "digits",
    "normalise",
    "search_statement",
]

TRGM_SCHEMA_QUERY = (
    "SELECT n.nspname AS schema FROM pg_extension e"
    " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
)
"""Where pg_trgm lives in this database: its operators are named with that schema."""

SESSION_SETTINGS = (
    "SELECT set_config('statement_timeout', %s, true),"
    # The tiers' branches must run in order, one after the other (see the docstring).
    " set_config('enable_parallel_append', 'off', true),"
    # Compiling a page's query costs more than running it (the costly plans' estimates,
    # for rows that the tiers' LIMITs never read, would otherwise switch JIT on).
    " set_config('jit', 'off', true),"
    # Planned with q's patterns, always: psycopg prepares a statement run five times on a
    # connection, and a generic plan knows no pattern (no prefix range of the words' key,
    # no estimate of a word's customers).
    " set_config('plan_cache_mode', 'force_custom_plan', true)"
)
"""Run first in the search's transaction, with its time limit (ms)."""
CLOSE_WORDS = 10
"""A typo'd word is looked for as at most this many of the words one typo from it, the
closest by trigrams first: a common short word has dozens ("mark": bark, dark, marc, mary,
mars...), a surname one to five."""
FEW_CUSTOMERS = 1000
"""Up to this many customers with a typo'd word's close words are fetched one by one
(a multi-word q); more are matched by the other words' index instead."""
SWAP_BONUS = 0.25
"""Added to a typo-close word's similarity when it has q's letters in another order."""
WHOLE_WORD_RANK = 3
"""The rank of a row q is whole words of (and no better tier holds)."""
WORD_START_RANK = 2
"""The rank of a row with a word starting with q (and no better tier holds)."""
MAX_WORDS = 8
MIN_PHONE_DIGITS = 3
PHONE_INDEX_DIGITS = 6
"""How many of a phone query's last digits the trigram index is asked for (see
`_phones_found`): a number's end is what varies from one customer to the next."""
MIN_LOCAL_PART = 4
"""An email's local part at least this long is what the index is asked for (see
`_contains`); a shorter one (`jo@`) would match too much on its own."""

LIST_COLUMNS = (
    "id",
    "customer_number",
    "first_name",
    "last_name",
    "email",
    "mobile_phone",
    "phone",
    "company_name",
    "dba_name",
    "customer_group",
    "registered_at",
    "deleted",
    "blocked",
    "city",
    "systems",
)
"""What a search answers with."""

TEXT = "(' ' || c.search_text)"
"""What q is compared with, as the trigram index holds it (migration 0002): the leading
space has no trigram of its own, so every match and similarity is that of `search_text`,
and `TEXT LIKE '% q%'` (a word starts with q) needs no second pattern for the first word."""

_NOT_DIGITS = re.compile(r"[^0-9]+")


def normalise(text: str) -> str:
    """Case-folded, accents stripped, whitespace collapsed: how search compares text."""
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(text.casefold().split())


def digits(text: str) -> str:
    return _NOT_DIGITS.sub("", text)


@dataclass(frozen=True)
class SearchCriteria:
    """A search, with its registration window already resolved to instants."""

    q: str | None = None
    city: str | None = None
    system_type: str | None = None
    group: str | None = None
    registered_from: datetime | None = None
    """Inclusive."""
    registered_to: datetime | None = None
    """Exclusive."""
    include_deleted: bool = False
    phone_digits: tuple[str, ...] = ()
    """Digit strings to look for in phone numbers (the gateway adds q's E.164 form)."""


def search_statement(
    schema: str,
    trgm_schema: str,
    criteria: SearchCriteria,
    *,
    after: tuple[Any, ...] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT for one page, and its parameters.

    Rows carry `rank` (with `q`) so the caller can build the next page's key: after a
    page, pass (rank, registered_at, id) of its last row with `q`, else (registered_at, id).
    """
    params: dict[str, Any] = {"limit": limit}
    # A merged customer is found as its survivor, never itself (not even with deleted).
    where: list[sql.Composable] = [sql.SQL("c.merged_into IS NULL")]
    if not criteria.include_deleted:
        where.append(sql.SQL("NOT c.deleted"))
    if criteria.registered_from is not None:
        params["registered_from"] = criteria.registered_from
        where.append(sql.SQL("c.registered_at >= %(registered_from)s"))
    if criteria.registered_to is not None:
        params["registered_to"] = criteria.registered_to
        where.append(sql.SQL("c.registered_at < %(registered_to)s"))
    wanted = {"c": criteria.city, "s": criteria.system_type, "g": criteria.group}
    facets = [f"{prefix}:{normalise(value)}" for prefix, value in wanted.items() if value]
    if facets:
        params["facets"] = facets
        where.append(sql.SQL("c.facets @> %(facets)s::text[]"))
    columns = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in LIST_COLUMNS)
    table = sql.Identifier(schema, "customers")
    q = normalise(criteria.q or "")
    if not q:
        if after is not None:
            params["after_at"], params["after_id"] = after
            where.append(sql.SQL("(c.registered_at, c.id) < (%(after_at)s, %(after_id)s)"))
        statement = sql.SQL(
            "SELECT {columns} FROM {table} c WHERE {where}"
            " ORDER BY c.registered_at DESC, c.id DESC LIMIT %(limit)s"
        ).format(columns=columns, table=table, where=_all(where))
        return statement, params
    trgm = sql.Identifier(trgm_schema)
    tiers, rank, typo_words, exact = _q_tiers(q, criteria, trgm, schema, params)
    filters = list(where)  # the search's own conditions: the same on every page
    if after is not None:
        params["after_rank"], params["after_at"], params["after_id"] = after
        where.append(
            sql.SQL(
                "({}, c.registered_at, c.id) < (%(after_rank)s, %(after_at)s, %(after_id)s)"
            ).format(rank)
        )
    selected = sql.SQL("SELECT {}, ({})::float8 AS rank").format(columns, rank)
    newest = sql.SQL("ORDER BY rank DESC, registered_at DESC, id DESC LIMIT %(limit)s")
    branches: list[sql.Composable] = []
    for tier in tiers:
        if tier.merged is not None:
            parts = [
                sql.SQL(
                    "SELECT x.* FROM {} v CROSS JOIN LATERAL ({} FROM {} w JOIN {} c"
                    ' ON c.id = w.id WHERE w.word = v.word COLLATE "C" AND {}'
                    " ORDER BY w.registered_at DESC, w.id DESC LIMIT %(limit)s) x"
                ).format(
                    sql.Identifier(part.newest_of),
                    selected,
                    sql.Identifier(schema, "customer_words"),
                    table,
                    _all([*where, part.condition]),
                )
                if part.newest_of
                else sql.SQL("{} FROM {} c WHERE {}").format(
                    selected, table, _all([*where, part.condition])
                )
                for part in tier.merged
            ]
            branches.append(
                # UNION: a customer with two words close to q is listed once.
                sql.SQL("(SELECT * FROM ({}) t {})").format(sql.SQL(" UNION ").join(parts), newest)
            )
        elif tier.entries is not None:
            conditions = [*where, tier.condition]
            if after is not None:
                if after[0] < tier.rank:
                    continue  # the page is past this tier
                if after[0] == tier.rank:
                    conditions.append(
                        sql.SQL("(w.registered_at, w.id) < (%(after_at)s, %(after_id)s)")
                    )
            branches.append(
                sql.SQL(
                    "({} FROM {} JOIN {} c ON c.id = w.id WHERE {}"
                    # The tier's rank is the same for all its rows: newest first is its order.
                    " ORDER BY w.registered_at DESC, w.id DESC LIMIT %(limit)s)"
                ).format(selected, tier.entries, table, _all(conditions))
            )
        else:
            branches.append(
                sql.SQL("({} FROM {} c WHERE {} {})").format(
                    selected, table, _all([*where, tier.condition]), newest
                )
            )
    close: list[sql.Composable] = []
    untyped = sql.SQL("")
    if exact is not None and typo_words:
        # q as typed is someone's name: its typos are not looked for (see `_q_tiers`).
        # A one-time filter: the vocabulary is not read when it holds. Its own walk of
        # the entries, not the tier's (a CTE of those would be walked whole, where the
        # tier stops at its page): it runs only when the tiers above did not fill the
        # page, and stops at its first customer.
        close.append(
            sql.SQL(
                "typed AS MATERIALIZED (SELECT EXISTS (SELECT FROM ({}) w JOIN {} c"
                " ON c.id = w.id WHERE {}) AS found)"
            ).format(exact, table, _all(filters))
        )
        untyped = sql.SQL(" AND NOT (SELECT found FROM typed)")
    close += [
        sql.SQL(
            # The words one typo from q's word: those sharing one of its deletions (see
            # `search_words`), ranked by trigrams. A word containing q's word is no typo
            # of it: its customers are found by substring (and would be fetched here only
            # to be left out).
            "close{k} AS MATERIALIZED (SELECT v.word, v.customers FROM {vocabulary} v"
            " WHERE v.word IN (SELECT d.word FROM {deletions} d"
            " WHERE d.deletion = ANY(%(deletions{k})s::text[]))"
            " AND v.word NOT LIKE %(like{k})s{untyped}"
            " ORDER BY {trgm}.similarity(v.word, %(word{k})s) + {swapped} DESC, v.word"
            " LIMIT {words})"
        ).format(
            swapped=_swapped("v.word", k),
            k=sql.SQL(str(k)),
            vocabulary=sql.Identifier(schema, "search_words"),
            deletions=sql.Identifier(schema, "search_word_deletions"),
            trgm=trgm,
            untyped=untyped,
            words=sql.Literal(CLOSE_WORDS),
        )
        for k in typo_words
    ]
    statement = sql.SQL("{}SELECT * FROM ({}) m LIMIT %(limit)s").format(
        sql.SQL("WITH {} ").format(sql.SQL(", ").join(close)) if close else sql.SQL(""),
        sql.SQL(" UNION ALL ").join(branches),
    )
    return statement, params


def _q_tiers(
    q: str,
    criteria: SearchCriteria,
    trgm: sql.Identifier,
    schema: str,
    params: dict[str, Any],
) -> tuple[list[Tier], sql.Composable, list[int], sql.Composable | None]:
    """The tiers of matches for `q` (normalised), best first, that together are every
    match and never overlap; the rank expression; which words of q are looked for as
    typos (each needs its `close<i>` words, see `search_statement`); for a phrase, the
    `customer_words` entries of the customers with all its words as whole words
    (`exact`): when one of them passes the search's conditions, q is taken as typed and
    no typo of its words is looked for (the vocabulary's trigram probe was half of a
    full name's time, for typos of a name found as typed)."""
    words = q.split()[:MAX_WORDS]
    phrase = " ".join(words)
    params["q"] = phrase
    params["word_start"] = f"% {_like_escaped(phrase)}%"
    params["whole_words"] = f"% {_like_escaped(phrase)} %"
    # A space before q in the pattern makes the index look for q's trigrams as a word's
    # start, so it finds only rows with a word starting like q (for a common prefix a
    # tenth of the rows merely containing it, which the heap had to check before).
    word_start = sql.SQL(TEXT + " LIKE %(word_start)s")
    whole_words = sql.SQL("' ' || c.search_text || ' ' LIKE %(whole_words)s")
    # A shorter q is close to everything that contains it: no similarity for it. Strict:
    # the similarity of q with whole words of the row, not with a run of letters that
    # may start in one word and end in the next.
    similarity: sql.Composable = (
        sql.SQL("{}.strict_word_similarity(%(q)s, c.search_text)::float8").format(trgm)
        if len(phrase) >= 3
        else sql.SQL("0")
    )
    for k, word in enumerate(words):
        if is_typo_word(word):
            params[f"letters{k}"] = "".join(sorted(word))
    if len(words) == 1 and is_typo_word(phrase):
        # Letters swapped keep the word's letters: such a word of the row comes first
        # among equally close ones (a swap breaks three trigrams, more than a wrong letter).
        similarity = sql.SQL(
            "{} + CASE WHEN EXISTS (SELECT 1 FROM unnest(string_to_array(c.search_text, ' '))"
            " AS t(word) WHERE {} > 0) THEN {} ELSE 0 END"
        ).format(similarity, _swapped("t.word", 0), sql.Literal(SWAP_BONUS))
    text_rank = sql.SQL("CASE WHEN {} THEN {} WHEN {} THEN {} ELSE {} END").format(
        whole_words,
        sql.Literal(WHOLE_WORD_RANK),
        word_start,
        sql.Literal(WORD_START_RANK),
        similarity,
    )
    rank: list[sql.Composable] = [text_rank]
    tiers: list[Tier] = []
    above: list[sql.Composable] = []
    """The better tiers' conditions: a row is in the first tier it matches."""
    number = q.removeprefix("#")
    if number.isascii() and number.isdigit() and len(number) <= 18:
        params["number"] = int(number)
        number_match = sql.SQL("c.customer_number = %(number)s")
        tiers.append(Tier(number_match))
        above.append(number_match)
        rank.append(sql.SQL("CASE WHEN c.customer_number = %(number)s THEN 8 ELSE 0 END"))
    phones = _phone_patterns(criteria.phone_digits)
    if phones:
        phone_match = sql.SQL("({})").format(
            sql.SQL(" OR ").join(
                sql.SQL("c.phone_digits LIKE %({})s").format(sql.SQL(f"phone{i}"))
                for i in range(len(phones))
            )
        )
        params.update({f"phone{i}": f"%{p}%" for i, p in enumerate(phones)})
        tiers.append(Tier(_first(_phones_found(phones, params), above)))
        above.append(phone_match)
        rank.append(sql.SQL("CASE WHEN {} THEN 4 ELSE 0 END").format(phone_match))
    customer_words = sql.Identifier(schema, "customer_words")
    if len(words) == 1 and "@" not in phrase:
        # q is a whole word: its customers newest first, from the word's own index
        # entries (a common first name reads a page of them, not all to sort them).
        params["word"] = phrase
        # (w.word = q is the whole-word condition itself: no filter to misestimate.)
        entries = sql.SQL("{} w").format(customer_words)
        tiers.append(
            Tier(
                _first(sql.SQL("w.word = %(word)s"), above),
                entries=entries,
                rank=WHOLE_WORD_RANK,
            )
        )
        above.append(whole_words)
    substrings = [_contains(word, f"like{i}", params) for i, word in enumerate(words)]
    typo_words = [i for i, word in enumerate(words) if is_typo_word(word)]
    exact = None
    if typo_words or "word" in params:
        # Words starting with q, then the rest: the typo arm (the costly part) runs only
        # when the first did not fill the page. A row has a word starting with q exactly
        # when one of its words does (q has no space): a range of the words' key, whose
        # entries are sorted newest first, and only the page's rows are read.
        starts, exact = _word_start_tiers(words, whole_words, above, customer_words, params)
        tiers += starts
        above.append(word_start)
    # The rest: every word of q a substring of the row, or one of them typo-close to one
    # of its words instead (two typo'd words at once are not looked for: each would
    # need the other's close words' customers). One branch finds the rows that contain
    # every word; one per typo word the rows where only that word is not a substring,
    # through the customers of the vocabulary's words close to it. Disjoint, sorted
    # together.
    rest = [Tier(_first(_all(substrings), above))]
    for k in typo_words:
        params[f"word{k}"] = words[k]
        params[f"deletions{k}"] = sorted(deletions_of(words[k]))
        not_k = sql.SQL("NOT {}").format(substrings[k])
        if len(words) == 1:
            # Each close word's newest customers: a customer's rank is at least its
            # word's similarity to q, so no customer of the page is further down a word's
            # list than the page is long.
            rest.append(Tier(_first(not_k, above), newest_of=f"close{k}"))
            continue
        # Two plans, one chosen when the statement runs by how many customers have the
        # close words (the planner cannot know: a first name's close words have 10,000+,
        # a surname's a few dozen): few, they are fetched and the other words checked on
        # them; many, the other words' index finds the rows and a hash of those customers'
        # ids checks them (`IS TRUE` keeps the planner from turning it back into a join).
        customers = sql.SQL(
            'c.id IN (SELECT w.id FROM {} w JOIN close{} v ON w.word = v.word COLLATE "C")'
        ).format(sql.Identifier(schema, "customer_words"), sql.SQL(str(k)))
        bearers = sql.SQL("(SELECT coalesce(sum(customers), 0) FROM close{})").format(
            sql.SQL(str(k))
        )
        few = sql.SQL("{} <= {} AND {}").format(bearers, sql.Literal(FEW_CUSTOMERS), customers)
        many = sql.SQL("{} > {} AND ({}) IS TRUE").format(
            bearers, sql.Literal(FEW_CUSTOMERS), customers
        )
        others = [substring for i, substring in enumerate(substrings) if i != k]
        for driven in (few, many):
            rest.append(Tier(_first(_all([*others, driven, not_k]), above)))
    tiers.append(Tier(sql.SQL("true"), merged=rest))
    return tiers, sql.SQL(" + ").join(rank), typo_words, exact


def _word_start_tiers(
    words: list[str],
    whole_words: sql.Composable,
    above: list[sql.Composable],
    customer_words: sql.Identifier,
    params: dict[str, Any],
) -> tuple[list[Tier], sql.Composable | None]:
    """The rows where a word starts with q (no better tier's), through `customer_words`;
    for a phrase, the entries of its whole words' tier (`exact`, see `_q_tiers`).

    q's words but the last are whole words of such a row and one of its words starts
    with the last (the phrase itself is then checked on the row); a row of q's whole
    words, rank 3, comes before the others, rank 2. Each tier's entries are sorted newest
    first before any row is read, so a page reads its own rows only (left to itself, the
    planner looks up every customer, then sorts).

    Such a row has a word that starts with the last word and is longer: q is a word start
    of the row and not whole words of it, so a character other than a space follows q's
    last word there. So the last word's own entries are left out (`p.word <> last`, on
    the index before any join): for a full name, the surname's hundred-odd entries were
    each a probe of the first name's key or a walk of all its entries, to find customers
    the tier then left out; when no word continues the surname, no entry is left."""
    *whole, last = words
    params["prefix"] = f"{_like_escaped(last)}%"
    params["last"] = last
    longer = "p.word LIKE %(prefix)s AND p.word <> %(last)s"
    if not whole:
        entries = sql.SQL(
            "(SELECT DISTINCT p.registered_at, p.id FROM {} p WHERE "
            + longer
            + " ORDER BY p.registered_at DESC, p.id DESC) w"
        ).format(customer_words)
        # (above holds the whole word already: its own tier came first)
        return [Tier(_first(sql.SQL("true"), above), entries=entries, rank=WORD_START_RANK)], None
    # The customers with all those words, by the words' key: the planner starts from the
    # word it estimates rarest and looks the others up by their whole key.
    joins = [sql.SQL("{} p").format(customer_words)]
    others: list[sql.Composable] = []
    for i, word in enumerate(whole):
        params[f"whole{i}"] = word
        k = sql.SQL(str(i))
        joins.append(
            sql.SQL("JOIN {} w{} ON w{}.registered_at = p.registered_at AND w{}.id = p.id").format(
                customer_words, k, k, k
            )
        )
        others.append(sql.SQL("w{}.word = %(whole{})s").format(k, k))

    def having(last_word: str) -> sql.Composable:
        return sql.SQL(
            "SELECT DISTINCT p.registered_at, p.id FROM {} WHERE {}"
            " ORDER BY p.registered_at DESC, p.id DESC"
        ).format(sql.SQL(" ").join(joins), _all([sql.SQL(last_word), *others]))

    exact = having("p.word = %(last)s")
    tiers = [
        Tier(
            _first(whole_words, above),
            entries=sql.SQL("({}) w").format(exact),
            rank=WHOLE_WORD_RANK,
        ),
        Tier(
            _first(sql.SQL(TEXT + " LIKE %(word_start)s"), [*above, whole_words]),
            entries=sql.SQL("({}) w").format(having(longer)),
            rank=WORD_START_RANK,
        ),
    ]
    return tiers, exact


@dataclass(frozen=True)
class Tier:
    """One UNION ALL branch: rows of `condition`; `entries`: found through entries of
    `customer_words` (`w`), newest first, all of rank `rank`; `merged`: conditions of
    branches sorted as one."""

    condition: sql.Composable
    entries: sql.Composable | None = None
    rank: int = 0
    merged: list[Tier] | None = None
    newest_of: str | None = None
    """In `merged`: the rows are each word of this CTE's newest customers matching."""


def _contains(word: str, name: str, params: dict[str, Any]) -> sql.Composable:
    """`search_text` contains `word`: through the trigram index, which for an email
    address is asked about its local part only. Every trigram of a pattern is looked up
    and those of a domain (`gmail.com`, a company's) are in a great many rows: reading their
    index entries was most of an email search's time (3,479 buffers, 30 ms over a million
    rows, against 465 and 6-7 ms for the local part). The whole address is then checked
    on the few rows found."""
    params[name] = f"%{_like_escaped(word)}%"
    local, at, _ = word.partition("@")
    if not at or len(local) < MIN_LOCAL_PART:
        return sql.SQL(TEXT + " LIKE %({})s").format(sql.SQL(name))
    params[f"{name}_local"] = f"%{_like_escaped(local)}@%"
    params[f"{name}_whole"] = word
    return sql.SQL("(" + TEXT + " LIKE %({})s AND strpos(c.search_text, %({})s) > 0)").format(
        sql.SQL(f"{name}_local"), sql.SQL(f"{name}_whole")
    )


def _phone_patterns(phone_digits: tuple[str, ...]) -> list[str]:
    """The digit strings a phone match looks for: those long enough, less any that holds
    another (a number containing "14155550123" contains "4155550123": the E.164 form the
    gateway adds of a national number is found by the national number alone)."""
    wanted = [p for p in dict.fromkeys(phone_digits) if len(p) >= MIN_PHONE_DIGITS]
    return [p for p in wanted if not any(o != p and o in p for o in wanted)]


def _phones_found(phones: list[str], params: dict[str, Any]) -> sql.Composable:
    """The rows whose phone digits contain one of `phones`, as the index is asked for
    them: each number's last `PHONE_INDEX_DIGITS` digits from the trigram index, then the
    whole number checked on those rows (`strpos`, which the index is not asked about).
    Every trigram of a `LIKE` pattern is looked up, and those of a number's start (its
    country and area codes) are in a great many rows: all of them for the bench's
    "+44 7010...", 1,143 index pages a query against 13 for its last six digits."""
    found = []
    for i, p in enumerate(phones):
        if len(p) <= PHONE_INDEX_DIGITS:
            found.append(sql.SQL("c.phone_digits LIKE %({})s").format(sql.SQL(f"phone{i}")))
            continue
        params[f"phone{i}_end"] = f"%{p[-PHONE_INDEX_DIGITS:]}%"
        params[f"phone{i}_whole"] = p
        found.append(
            sql.SQL("(c.phone_digits LIKE %({})s AND strpos(c.phone_digits, %({})s) > 0)").format(
                sql.SQL(f"phone{i}_end"), sql.SQL(f"phone{i}_whole")
            )
        )
    return sql.SQL("({})").format(sql.SQL(" OR ").join(found))


def _swapped(word: str, k: int) -> sql.Composable:
    """SWAP_BONUS when `word` has the letters of q's k-th word in another order, else 0."""
    return sql.SQL(
        "CASE WHEN length({word}) = length(%(word{k})s) AND {word} <> %(word{k})s"
        " AND array_to_string(ARRAY(SELECT x FROM unnest(string_to_array({word}, NULL)) x"
        " ORDER BY x COLLATE \"C\"), '') = %(letters{k})s THEN {bonus} ELSE 0 END"
    ).format(word=sql.SQL(word), k=sql.SQL(str(k)), bonus=sql.Literal(SWAP_BONUS))


def _first(condition: sql.Composable, above: list[sql.Composable]) -> sql.Composable:
    """`condition`, for rows that no better tier holds."""
    if not above:
        return condition
    return sql.SQL("{} AND NOT ({})").format(condition, sql.SQL(" OR ").join(above))


def _all(conditions: list[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("true")
    return sql.SQL(" AND ").join(conditions)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
