-- The accounts read model: a customer's loyalty ledger, stored cards and prepaid packages.

CREATE TABLE {schema}.loyalty_entries (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    points integer NOT NULL,
    -- The customer's words: nulled when the customer is erased.
    reason text,
    balance bigint NOT NULL,
    recorded_at timestamptz NOT NULL,
    recorded_by text NOT NULL,
    version bigint NOT NULL
);
CREATE INDEX loyalty_entries_customer_idx ON {schema}.loyalty_entries (customer_id, recorded_at, id);

CREATE TABLE {schema}.loyalty_balances (
    customer_id uuid PRIMARY KEY,
    balance bigint NOT NULL,
    -- The ledger's version: an If-Match for the next entry.
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE {schema}.cards (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    provider text NOT NULL,
    token text NOT NULL,
    brand text NOT NULL,
    last4 text NOT NULL,
    exp_month integer NOT NULL,
    exp_year integer NOT NULL,
    added_at timestamptz NOT NULL,
    added_by text NOT NULL
);
CREATE INDEX cards_customer_idx ON {schema}.cards (customer_id, added_at, id);

CREATE TABLE {schema}.card_wallets (
    customer_id uuid PRIMARY KEY,
    -- The wallet's version: the If-Match of a card's removal.
    version bigint NOT NULL
);

CREATE TABLE {schema}.packages (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    name text NOT NULL,
    service_id text,
    sessions integer NOT NULL,
    sessions_left integer NOT NULL,
    expires_at timestamptz,
    price numeric,
    deactivated boolean NOT NULL DEFAULT false,
    bought_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL
);
CREATE INDEX packages_customer_idx ON {schema}.packages (customer_id, bought_at, id);

-- Customers erased: an event about one that arrives after its erasure keeps nothing personal.
CREATE TABLE {schema}.erased_customers (
    customer_id uuid PRIMARY KEY
);
