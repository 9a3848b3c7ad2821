-- Signed orders as published: the book is rebuilt from here after a restart, so nothing accepted is lost.
CREATE TABLE orders (
    order_hash      BYTEA PRIMARY KEY CHECK (length(order_hash) = 32),
    chain_id        NUMERIC(78, 0) NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('app', 'dataset', 'workerpool', 'request')),
    -- The order exactly as signed, in the SDK's JSON form (uint256 as decimal strings).
    body            JSONB NOT NULL,
    signer          BYTEA NOT NULL CHECK (length(signer) = 20),
    category        NUMERIC(78, 0),
    remaining       NUMERIC(78, 0) NOT NULL CHECK (remaining >= 0),
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'filled', 'canceled', 'dead')),
    published_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX orders_open_by_kind ON orders (chain_id, kind, category) WHERE status = 'open';
CREATE INDEX orders_by_signer ON orders (signer, kind) WHERE status = 'open';
