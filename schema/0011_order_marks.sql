-- What the hub says of an order hash besides deals: presigned (SIGN) or closed (CLOSE) through
-- manage*Order, whether or not Dragon ever saw the order. With deals, this makes the store a complete index of
-- the hub's per-order state since its deployment block, so publication reads the store, not the node. Keyed
-- by block like everything chain sync writes: a reorg deletes the rows of the orphaned blocks.
CREATE TABLE order_marks (
    chain_id        BIGINT NOT NULL,
    block_number    BIGINT NOT NULL,
    log_index       INTEGER NOT NULL,
    order_hash      BYTEA NOT NULL CHECK (length(order_hash) = 32),
    mark            TEXT NOT NULL CHECK (mark IN ('presigned', 'closed')),
    -- Presigned: who the hub recorded as the presigner (the owner at that block).
    signer          BYTEA CHECK (signer IS NULL OR length(signer) = 20),
    PRIMARY KEY (chain_id, block_number, log_index)
);

CREATE INDEX order_marks_by_order ON order_marks (order_hash, block_number DESC, log_index DESC);

-- Backfills done per chain: a database whose sync cursor passed blocks before a table existed gets that table
-- filled once from the chain at start-up (`order_marks` here), then chain sync keeps it.
CREATE TABLE sync_backfills (
    chain_id    BIGINT NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (chain_id, name)
);
