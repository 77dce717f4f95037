-- The duplicates read model: customers' compared facts, their match keys, and the pairs
-- of customers that are likely one (projections/duplicates.py).

-- pg_trgm's similarity() scores the names; created as the search model's migration does.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN unique_violation OR duplicate_object THEN
    NULL;
END
$$;

CREATE TABLE {schema}.customers (
    customer_id uuid PRIMARY KEY,
    customer_number bigint NOT NULL,
    -- False once deleted: the row stays (a restore brings its pairs back), its keys go.
    active boolean NOT NULL,
    -- What a list of pairs shows of each customer.
    first_name text,
    last_name text,
    email text,
    mobile_phone text,
    city text,
    -- The name compared (case-folded, accents stripped), and the facts the keys come
    -- from: {"values": {profile field: value}, "contacts": [[id, email, phone]],
    -- "addresses": [[id, kind, line1, postal_code, city]]}.
    full_name text NOT NULL,
    facts jsonb NOT NULL
);

-- The normalised identifying values of every active customer. The pairs are found by
-- equality on (kind, key): registration's look-up and each batch are index lookups.
CREATE TABLE {schema}.match_keys (
    kind text NOT NULL,
    key text NOT NULL,
    customer_id uuid NOT NULL,
    source text NOT NULL,
    PRIMARY KEY (kind, key, customer_id, source)
);
CREATE INDEX match_keys_customer_idx ON {schema}.match_keys (customer_id);

-- One row per unordered pair; score 0 to 1; reasons [{"reason", "detail"}].
CREATE TABLE {schema}.pairs (
    low uuid NOT NULL,
    high uuid NOT NULL,
    score numeric(4, 3) NOT NULL,
    reasons jsonb NOT NULL,
    PRIMARY KEY (low, high),
    CHECK (low < high)
);
CREATE INDEX pairs_high_idx ON {schema}.pairs (high);
-- GET /v1/duplicates: highest score first, keyset on (score, low, high).
CREATE INDEX pairs_score_idx ON {schema}.pairs (score, low, high);
