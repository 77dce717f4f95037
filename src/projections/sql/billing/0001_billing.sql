-- The billing read model: the customer's invoices and payments tabs, and the price
-- exception report. Money is numeric (never float), in each record's currency.

CREATE TABLE {schema}.invoices (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    number text NOT NULL,
    currency text NOT NULL,
    total numeric NOT NULL,
    -- Payments less refunds, and customer credit applied.
    paid numeric NOT NULL,
    credited numeric NOT NULL,
    open_amount numeric NOT NULL,
    status text NOT NULL,
    line_count integer NOT NULL,
    issued_at timestamptz NOT NULL,
    due_at timestamptz,
    updated_at timestamptz NOT NULL,
    -- The aggregate version the row shows: updates apply only to a newer one.
    version bigint NOT NULL
);
CREATE INDEX invoices_customer_idx ON {schema}.invoices (customer_id, issued_at, id);

CREATE TABLE {schema}.payments (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    number text NOT NULL,
    kind text NOT NULL,
    amount numeric NOT NULL,
    currency text NOT NULL,
    method text NOT NULL,
    -- Personal (a bank reference may name people): null once the customer is erased.
    reference text,
    invoice_id uuid,
    invoice_number text,
    paid_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX payments_customer_idx ON {schema}.payments (customer_id, paid_at, id);

-- Each customer's agreed prices, followed from Customer.CustomPriceSet: what a price
-- exception is compared with.
CREATE TABLE {schema}.custom_prices (
    customer_id uuid NOT NULL,
    service_id text NOT NULL,
    price numeric NOT NULL,
    PRIMARY KEY (customer_id, service_id)
);

-- One row per invoice line whose unit price is not the list price billing sent with it.
CREATE TABLE {schema}.price_exceptions (
    id uuid PRIMARY KEY,
    invoice_id uuid NOT NULL,
    line_index integer NOT NULL,
    customer_id uuid NOT NULL,
    invoice_number text NOT NULL,
    invoice_status text NOT NULL,
    currency text NOT NULL,
    service_id text,
    -- Personal (the line's free text): null once the customer is erased.
    description text,
    quantity numeric NOT NULL,
    unit_price numeric NOT NULL,
    list_price numeric NOT NULL,
    -- The customer's custom price for the service when the invoice was issued.
    custom_price_at_issue numeric,
    issued_at timestamptz NOT NULL,
    UNIQUE (invoice_id, line_index)
);
CREATE INDEX price_exceptions_issued_idx ON {schema}.price_exceptions (issued_at, id);
CREATE INDEX price_exceptions_customer_idx
    ON {schema}.price_exceptions (customer_id, issued_at, id);
CREATE INDEX price_exceptions_service_idx
    ON {schema}.price_exceptions (service_id, issued_at, id);
