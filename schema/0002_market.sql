-- The market: published orders with a typed column for every filter of the API, the engine's deal
-- proposals, authentication challenges and sessions, and the categories read from the hub.
-- Version 1's `orders` table was never written by any release, so it is replaced rather than altered.
DROP TABLE orders;

CREATE TABLE orders (
    -- Arrival number, given by the sequencer in commit order. It is the engine's time priority, so the book
    -- rebuilt after a restart (orders re-added by ascending seq) is the book that was there before.
    seq             BIGINT PRIMARY KEY,
    -- Unique whatever the status: an order that was filled, cancelled or dead is never reopened.
    order_hash      BYTEA NOT NULL UNIQUE CHECK (length(order_hash) = 32),
    chain_id        BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('app', 'dataset', 'workerpool', 'request')),
    -- The order exactly as signed, in the SDK's JSON form (uint256 as decimal strings).
    body            JSONB NOT NULL,
    signer          BYTEA NOT NULL CHECK (length(signer) = 20),
    -- The order's own asset: app, dataset or workerpool; a request's app.
    asset           BYTEA NOT NULL CHECK (length(asset) = 20),
    -- Owner of the asset at publication (the requester for a request order).
    owner           BYTEA NOT NULL CHECK (length(owner) = 20),
    -- appprice, datasetprice, workerpoolprice, or a request's workerpoolmaxprice (nRLC, below 2^64).
    price           NUMERIC(20, 0) NOT NULL CHECK (price >= 0),
    volume          BIGINT NOT NULL CHECK (volume > 0),
    tag             BYTEA NOT NULL CHECK (length(tag) = 32),
    category        BIGINT,
    trust           BIGINT,
    -- Restrictions (zero address = none); for a request: the app, dataset and workerpool it names.
    app             BYTEA,
    dataset         BYTEA,
    workerpool      BYTEA,
    requester       BYTEA,
    beneficiary     BYTEA,
    -- Volume still available to match (volume - consumed on chain - volume in the engine's proposals).
    remaining       BIGINT NOT NULL CHECK (remaining >= 0),
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'filled', 'canceled', 'dead')),
    published_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The book is rebuilt from the open orders in arrival order.
CREATE INDEX orders_open ON orders (seq) WHERE status = 'open';
CREATE INDEX orders_by_signer ON orders (signer, kind, seq) WHERE status = 'open';
CREATE INDEX orders_by_asset ON orders (kind, asset) WHERE status = 'open';

-- Deals the engine proposed. Putting them on chain (and the deals table of on-chain deals) comes with
-- settlement; until then a proposal stays `proposed`.
CREATE TABLE deal_proposals (
    id                  BIGSERIAL PRIMARY KEY,
    chain_id            BIGINT NOT NULL,
    app_hash            BYTEA NOT NULL,
    dataset_hash        BYTEA,
    workerpool_hash     BYTEA NOT NULL,
    request_hash        BYTEA NOT NULL,
    volume              BIGINT NOT NULL CHECK (volume > 0),
    app_price           NUMERIC(20, 0) NOT NULL,
    dataset_price       NUMERIC(20, 0) NOT NULL,
    workerpool_price    NUMERIC(20, 0) NOT NULL,
    category            BIGINT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'proposed'
                        CHECK (status IN ('proposed', 'submitted', 'settled', 'failed')),
    reason              TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX deal_proposals_by_request ON deal_proposals (request_hash);
CREATE INDEX deal_proposals_pending ON deal_proposals (id) WHERE status IN ('proposed', 'submitted');

-- Login challenges: single use (deleted when used) and short-lived.
CREATE TABLE challenges (
    hash        BYTEA PRIMARY KEY CHECK (length(hash) = 32),
    address     BYTEA NOT NULL CHECK (length(address) = 20),
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Session tokens (stored as their SHA-256, never in clear) from one challenge login.
CREATE TABLE sessions (
    token_hash  BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    address     BYTEA NOT NULL CHECK (length(address) = 20),
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Categories as the hub defines them.
CREATE TABLE categories (
    chain_id            BIGINT NOT NULL,
    catid               BIGINT NOT NULL,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL,
    work_clock_time_ref BIGINT NOT NULL,
    PRIMARY KEY (chain_id, catid)
);
