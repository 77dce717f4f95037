-- The files read model: one row per live customer file, for the files tab.

CREATE TABLE {schema}.files (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    -- The customer's personal data: the rows go when the customer is erased.
    name text NOT NULL,
    size bigint NOT NULL,
    content_type text NOT NULL,
    sha256 text NOT NULL,
    uploaded_at timestamptz NOT NULL,
    uploader text NOT NULL,
    -- The file's version: a delete's If-Match.
    version bigint NOT NULL
);

-- A customer's files newest first, one keyset page at a time.
CREATE INDEX files_customer_idx ON {schema}.files (customer_id, uploaded_at, id);
