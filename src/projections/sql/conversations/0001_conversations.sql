-- The conversations read model: what passed between the business and each customer.

-- Calls, visits, emails... logged by staff (the Calls tab).
CREATE TABLE {schema}.interactions (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    kind text NOT NULL,
    direction text NOT NULL,
    -- Null once the customer is erased.
    summary text,
    at timestamptz NOT NULL,
    staff_id text NOT NULL,
    logged_at timestamptz NOT NULL,
    logged_by text NOT NULL
);
CREATE INDEX interactions_customer_idx ON {schema}.interactions (customer_id, at, id);
CREATE INDEX interactions_kind_idx ON {schema}.interactions (customer_id, kind, at, id);

-- Chat messages; an erased customer's are deleted.
CREATE TABLE {schema}.messages (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    sender text NOT NULL,
    author text NOT NULL,
    text text NOT NULL,
    sent_at timestamptz NOT NULL
);
CREATE INDEX messages_customer_idx ON {schema}.messages (customer_id, sent_at, id);

-- Satisfaction scores, at most one per ticket (the aggregate's id says so already).
CREATE TABLE {schema}.satisfaction (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    score smallint NOT NULL,
    -- Null once the customer is erased.
    comment text,
    ticket_id uuid,
    given_at timestamptz NOT NULL,
    given_by text NOT NULL
);
CREATE INDEX satisfaction_customer_idx ON {schema}.satisfaction (customer_id, given_at, id);
