-- The search read model: one row per customer, what the list view shows and filters on.

-- Extensions are per database, not per schema. Created without a schema it lands in the
-- connection's current schema (normally `public`), never in this read model's schema, so
-- a rebuild dropping this schema cannot take it away from the others. A migrator racing
-- this one may create it first: that is fine too.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN unique_violation OR duplicate_object THEN
    NULL;
END
$$;

CREATE TABLE {schema}.customers (
    id uuid PRIMARY KEY,
    customer_number bigint NOT NULL,
    first_name text NOT NULL,
    last_name text,
    email text,
    mobile_phone text,
    phone text,
    company_name text,
    dba_name text,
    customer_group text,
    city text,
    registered_at timestamptz NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    blocked boolean NOT NULL DEFAULT false,
    -- The parts search needs, kept to recompute `city` and the facets when one goes:
    -- [[address_id, kind, city], ...] in the order added, and {system_id: system_type}.
    addresses jsonb NOT NULL DEFAULT '[]',
    systems jsonb NOT NULL DEFAULT '{}',
    -- What `q` and the filters compare with, normalised (case-folded, accents stripped):
    search_text text NOT NULL,
    phone_digits text NOT NULL DEFAULT '',
    -- 'c:<city>' for every address's city, 's:<system type>', 'g:<group>': one GIN
    -- index answers any combination of the city, system_type and group filters.
    facets text[] NOT NULL DEFAULT '{}'
);

-- The list view: newest first, within a registration window (keyset on (registered_at, id)).
CREATE INDEX customers_registered_idx ON {schema}.customers (registered_at, id);
CREATE INDEX customers_number_idx ON {schema}.customers (customer_number);
CREATE INDEX customers_facets_idx ON {schema}.customers USING gin (facets);

-- Trigram indexes: substring (LIKE) and typo-tolerant (<%) matching. The operator class is
-- named with the schema the extension really lives in, wherever an earlier migrator put it.
DO $$
DECLARE
    trgm name := (
        SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm'
    );
BEGIN
    EXECUTE format(
        'CREATE INDEX customers_search_text_idx ON %s.customers USING gin (search_text %I.gin_trgm_ops)',
        '{schema}', trgm
    );
    EXECUTE format(
        'CREATE INDEX customers_phone_digits_idx ON %s.customers USING gin (phone_digits %I.gin_trgm_ops)',
        '{schema}', trgm
    );
END
$$;
