-- Words, for typo search and for a word's newest customers.
--
-- `customer_words`: one row per customer and distinct word of its search text (split on
-- spaces; the email address, the token with an "@", is left out: it is matched by
-- substring). Its key, walked backwards, is a word's customers newest first: a common
-- first name's first page reads 51 entries instead of sorting every customer who has it.
--
-- `search_words`: the vocabulary typos are looked for in. The distinct words of four or
-- more letters (no digits) with the number of customers who have each; a word goes when
-- its last customer does (erasure leaves no word of an erased customer that no other
-- customer has). Its trigram index finds the words close to a typo'd query word.
CREATE TABLE {schema}.customer_words (
    word text NOT NULL,
    registered_at timestamptz NOT NULL,
    id uuid NOT NULL,
    PRIMARY KEY (word, registered_at, id)
);

CREATE TABLE {schema}.search_words (
    word text PRIMARY KEY,
    customers integer NOT NULL
);

INSERT INTO {schema}.customer_words (word, registered_at, id)
SELECT DISTINCT w.word, c.registered_at, c.id
FROM {schema}.customers c, regexp_split_to_table(c.search_text, ' ') AS w(word)
WHERE w.word <> '' AND strpos(w.word, '@') = 0;

INSERT INTO {schema}.search_words (word, customers)
SELECT word, count(*) FROM {schema}.customer_words
WHERE length(word) >= 4 AND word ~ '^[[:alpha:]]+$'
GROUP BY word;

DO $$
DECLARE
    trgm name := (
        SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm'
    );
BEGIN
    EXECUTE format(
        'CREATE INDEX search_words_trgm_idx ON %s.search_words USING gin (word %I.gin_trgm_ops)',
        '{schema}', trgm
    );
END
$$;
