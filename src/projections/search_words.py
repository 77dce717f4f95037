"""The search read model's words: which customer has which word, and the vocabulary.

`customer_words` holds (word, registered_at, id) for every distinct word of a customer's
search text, its email address too: walked newest first, it is a word's newest customers
without sorting all of them; its words compare byte-wise, so a range of its key is the
customers with a word starting with a prefix. `search_words` is the vocabulary typos are
looked for in: every word of `TYPO_MIN_LENGTH`+ letters with the number of customers who
have it, deleted when that number reaches zero, so an erased customer's words that nobody
else has go with it. `search_word_deletions` is how a typo finds its words: each vocabulary
word under itself and under each of its one-letter deletions (`deletions_of`); two words are
one typo apart (a letter wrong, missing or added, two letters swapped or one moved) when
they share one of these, so a query word's few deletions, looked up by equality, are its
candidates.
A word's deletions enter and leave with it, in the same transaction. All three are kept by
the differences between a batch's rows before and after.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql

__all__ = ["TYPO_MIN_LENGTH", "WordChanges", "deletions_of", "is_typo_word", "words_of"]

TYPO_MIN_LENGTH = 4
"""Shorter words are neither looked for as typos nor in the vocabulary: one letter of three
changed is a third of the word, and the words it reaches are other words, not typos
("tom": tim, ton, tod, toms...)."""

Key = tuple[str, datetime, UUID]


def words_of(search_text: str) -> set[str]:
    """The words a customer is found by word or by a word's start: its search text's."""
    return {word for word in search_text.split(" ") if word}


def is_typo_word(word: str) -> bool:
    """Whether a word is one typos are looked for (query) or in (vocabulary)."""
    return len(word) >= TYPO_MIN_LENGTH and word.isalpha()


def deletions_of(word: str) -> set[str]:
    """The word and every word one letter shorter that it contains in order: "jonh" and
    "john" share "jon" (swapped), "smith" and "smyth" "smth" (wrong), "lovelce" and
    "lovelace" "lovelce" (missing). Migration 0005 computes the same in SQL."""
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


class WordChanges:
    """A batch's word rows to delete and to insert, from each row's words before and after."""

    def __init__(self) -> None:
        self.removed: list[Key] = []
        self.added: list[Key] = []
        self.counts: Counter[str] = Counter()

    def change(self, id: UUID, at: datetime, before: set[str], after: set[str]) -> None:
        for word in before - after:
            self.removed.append((word, at, id))
            if is_typo_word(word):
                self.counts[word] -= 1
        for word in after - before:
            self.added.append((word, at, id))
            if is_typo_word(word):
                self.counts[word] += 1

    def save(self, cursor: Cursor[Any], schema: str) -> None:
        words = sql.Identifier(schema, "customer_words")
        vocabulary = sql.Identifier(schema, "search_words")
        if self.removed:
            cursor.execute(
                sql.SQL(
                    "DELETE FROM {} w USING unnest(%b::text[], %b::timestamptz[], %b::uuid[])"
                    " AS r(word, registered_at, id) WHERE (w.word, w.registered_at, w.id)"
                    " = (r.word, r.registered_at, r.id)"
                ).format(words),
                _columns(self.removed),
            )
        if self.added:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (word, registered_at, id)"
                    " SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::uuid[])"
                ).format(words),
                _columns(self.added),
            )
        counts = {word: n for word, n in self.counts.items() if n}
        if not counts:
            return
        cursor.execute(
            # Sorted: two writers never lock the same words in opposite orders.
            sql.SQL(
                "INSERT INTO {0} AS v (word, customers)"
                " SELECT * FROM unnest(%b::text[], %b::int[]) ORDER BY 1"
                " ON CONFLICT (word) DO UPDATE SET customers = v.customers + EXCLUDED.customers"
                " RETURNING v.word, v.customers"
            ).format(vocabulary),
            (sorted(counts), [counts[w] for w in sorted(counts)]),
        )
        # A word whose count is now its batch's change had no row: it entered the
        # vocabulary (a row never stays at 0 customers, see below).
        entered = sorted(
            row["word"] for row in cursor.fetchall() if row["customers"] == counts[row["word"]]
        )
        gone: list[str] = []
        left = sorted(word for word, n in counts.items() if n < 0)
        if left:
            cursor.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE word = ANY(%b::text[]) AND customers <= 0 RETURNING word"
                ).format(vocabulary),
                (left,),
            )
            gone = sorted(row["word"] for row in cursor.fetchall())
        deletions = sql.Identifier(schema, "search_word_deletions")
        if gone:
            # By their whole key: an erased customer's word leaves no deletion behind.
            cursor.execute(
                sql.SQL(
                    "DELETE FROM {} d USING unnest(%b::text[], %b::text[]) AS r(deletion, word)"
                    " WHERE (d.deletion, d.word) = (r.deletion, r.word)"
                ).format(deletions),
                _deletion_columns(gone),
            )
        if entered:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (deletion, word) SELECT * FROM unnest(%b::text[], %b::text[])"
                ).format(deletions),
                _deletion_columns(entered),
            )


def _deletion_columns(words: list[str]) -> tuple[list[str], list[str]]:
    pairs = [(deletion, word) for word in words for deletion in sorted(deletions_of(word))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _columns(keys: list[Key]) -> tuple[list[str], list[datetime], list[UUID]]:
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
