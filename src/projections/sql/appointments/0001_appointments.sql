-- The appointments read model: one row per appointment, for the list and calendar views.

CREATE TABLE {schema}.appointments (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    staff_id text,
    service_id text,
    status text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    -- How many times it was moved: the calendar's SEQUENCE.
    reschedules integer NOT NULL DEFAULT 0,
    cancel_reason text,
    booked_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- The aggregate version the row shows: updates apply only to a newer one, so
    -- applying an event twice (a parked event retried) changes nothing.
    version bigint NOT NULL
);

-- Keyset pages in time order, per staff member, per customer, or all.
CREATE INDEX appointments_staff_idx ON {schema}.appointments (staff_id, starts_at, id);
CREATE INDEX appointments_customer_idx ON {schema}.appointments (customer_id, starts_at, id);
CREATE INDEX appointments_starts_idx ON {schema}.appointments (starts_at, id);
