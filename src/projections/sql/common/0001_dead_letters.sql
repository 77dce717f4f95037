-- Events a read model could not apply, parked with the error instead of skipped.
CREATE TABLE {schema}.dead_letters (
    position bigint PRIMARY KEY,
    event_type text NOT NULL,
    originator_id uuid NOT NULL,
    error text NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    retried_at timestamptz
);
