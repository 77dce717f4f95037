-- The trigram index over `' ' || search_text` instead of `search_text` (same trigrams: a
-- leading space has none). Queries compare q with that expression, so "a word starts with
-- q" is one pattern, `LIKE '% q%'`, that the index answers with q's word-start trigrams:
-- it finds only rows with a word starting like q, not every row containing q somewhere
-- (for a prefix common inside words, ten times as many rows for the heap to check).
DO $$
DECLARE
    trgm name := (
        SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm'
    );
BEGIN
    EXECUTE format(
        'CREATE INDEX customers_text_idx ON %s.customers USING gin ((%L || search_text) %I.gin_trgm_ops)',
        '{schema}', ' ', trgm
    );
END
$$;

DROP INDEX {schema}.customers_search_text_idx;
