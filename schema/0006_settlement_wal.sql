-- Settlement's write-ahead log and its gas accounting (issue 16, findings 8 and 9).
--
-- Every transaction the settler signs is stored here, raw bytes included, in the same database transaction that
-- marks its proposals `submitted`, and only then broadcast. Whatever stops the server (kill -9, a graceful stop
-- aborting the settler, a crash of the node), the store knows every transaction that may reach the chain, and a
-- restarted settler follows each one to a final state before it signs anything new:
--   mined  its receipt decides (chain sync settles the deals; a revert or a skipped deal fails its proposal);
--   dead   its nonce was consumed and no row of that nonce was mined: it can never land, and only then do its
--          proposals fail.
-- A fee-bumped replacement is a new row with the same nonce and the same proposals, also stored before it is
-- sent; when one row of a nonce is mined, the others of that nonce are dead.
CREATE TABLE settlement_txs (
    id                          BIGSERIAL PRIMARY KEY,
    chain_id                    BIGINT NOT NULL,
    operator                    BYTEA NOT NULL CHECK (length(operator) = 20),
    nonce                       BIGINT NOT NULL CHECK (nonce >= 0),
    tx_hash                     BYTEA NOT NULL UNIQUE CHECK (length(tx_hash) = 32),
    -- The signed EIP-2718 envelope, sent again byte for byte when the node lost it.
    raw                         BYTEA NOT NULL,
    -- The proposals it carries, in batch order (the index of `MatchOrdersFailed`).
    proposals                   BIGINT[] NOT NULL CHECK (cardinality(proposals) > 0),
    gas_limit                   BIGINT NOT NULL,
    max_fee_per_gas             NUMERIC(78, 0) NOT NULL,
    max_priority_fee_per_gas    NUMERIC(78, 0) NOT NULL,
    status                      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'mined', 'dead')),
    -- Why a row is dead (replaced by the mined row of its nonce, nonce used by another transaction, refused by
    -- the node at its first and only broadcast).
    reason                      TEXT,
    -- From the receipt, once mined.
    succeeded                   BOOLEAN,
    block_number                BIGINT,
    gas_used                    BIGINT,
    effective_gas_price         NUMERIC(78, 0),
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX settlement_txs_pending ON settlement_txs (chain_id, operator, nonce) WHERE status = 'pending';
CREATE INDEX settlement_txs_by_nonce ON settlement_txs (chain_id, operator, nonce);
CREATE INDEX settlement_txs_mined_at ON settlement_txs (chain_id, block_number) WHERE status = 'mined';
-- Which transactions carry a proposal (start-up and reorgs ask whether a proposal is still in flight).
CREATE INDEX settlement_txs_proposals ON settlement_txs USING GIN (proposals);

-- The gas each mined settlement cost, split evenly over the deals it carried, with who the deal served: the
-- settler's budgets (per operator, per requester, per workerpool owner, and for deals whose total price is zero)
-- are sums over a sliding window of these rows.
CREATE TABLE settlement_charges (
    id                  BIGSERIAL PRIMARY KEY,
    chain_id            BIGINT NOT NULL,
    tx_id               BIGINT NOT NULL REFERENCES settlement_txs (id),
    proposal_id         BIGINT NOT NULL,
    -- The signer of the request order.
    requester           BYTEA NOT NULL CHECK (length(requester) = 20),
    -- The owner of the workerpool order's pool.
    workerpool_owner    BYTEA NOT NULL CHECK (length(workerpool_owner) = 20),
    -- app + dataset + workerpool price = 0: nobody pays anybody for this deal.
    free                BOOLEAN NOT NULL,
    gas                 BIGINT NOT NULL CHECK (gas >= 0),
    wei                 NUMERIC(78, 0) NOT NULL,
    charged_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX settlement_charges_at ON settlement_charges (chain_id, charged_at);
CREATE INDEX settlement_charges_by_requester ON settlement_charges (requester, charged_at);
CREATE INDEX settlement_charges_by_owner ON settlement_charges (workerpool_owner, charged_at);
CREATE INDEX settlement_charges_free ON settlement_charges (chain_id, charged_at) WHERE free;
