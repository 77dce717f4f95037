-- One row per event of a customer's history, with its field-level changes.
CREATE TABLE {schema}.history (
    position bigint PRIMARY KEY,
    customer_id uuid NOT NULL,
    version integer NOT NULL,
    type text NOT NULL,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    correlation_id text NOT NULL,
    -- [{"field": ..., "from": ..., "to": ...}], in the order the event states them.
    changes jsonb NOT NULL
);

-- A customer's page, oldest first (GET /v1/customers/{id}/history).
CREATE INDEX history_by_customer ON {schema}.history (customer_id, position);

-- Each customer's fields as history names them ({"email": ..., "notes[<id>].text": ...}),
-- as of its last event here: the "from" of its next change. Written with the rows.
-- Rewritten whole at every batch that touches the customer, and only ever read whole: plain
-- json (no jsonb conversion either way), kept uncompressed in the row (toast_tuple_target),
-- with room on each page for the new version (fillfactor), so an update stays HOT.
CREATE TABLE {schema}.snapshots (
    customer_id uuid PRIMARY KEY,
    position bigint NOT NULL,  -- the last event applied
    fields json NOT NULL
) WITH (fillfactor = 50, toast_tuple_target = 8160);
