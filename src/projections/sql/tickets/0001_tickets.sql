-- The tickets read model: one row per repair ticket, for the list views.

CREATE TABLE {schema}.tickets (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    subject text NOT NULL,
    status text NOT NULL,
    device_type text NOT NULL,
    device_make text,
    device_model text,
    device_serial text,
    public_comments integer NOT NULL DEFAULT 0,
    opened_at timestamptz NOT NULL,
    status_changed_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- The aggregate version the row shows: updates apply only to a newer one.
    version bigint NOT NULL
);

-- Keyset pages newest first, per customer, per status, or all.
CREATE INDEX tickets_customer_idx ON {schema}.tickets (customer_id, opened_at, id);
CREATE INDEX tickets_status_idx ON {schema}.tickets (status, opened_at, id);
CREATE INDEX tickets_opened_idx ON {schema}.tickets (opened_at, id);
