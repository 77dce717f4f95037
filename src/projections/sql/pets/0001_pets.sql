-- The pets read model: one row per pet on a customer's record (pet-care businesses).

CREATE TABLE {schema}.pets (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    name text NOT NULL,
    species text NOT NULL,
    breed text,
    birthday date,
    notes text,
    vet_name text,
    vet_clinic text,
    vet_phone text,
    added_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- The aggregate version the row shows: updates apply only to a newer one.
    version bigint NOT NULL
);

-- A customer's pets, in the order they were added, one keyset page at a time.
CREATE INDEX pets_customer_idx ON {schema}.pets (customer_id, added_at, id);
