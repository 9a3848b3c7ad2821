-- Settlement and chain sync. What sync writes is keyed by the block it came from, so undoing a reorg is
-- deleting the rows of the orphaned blocks and recomputing what derives from them (remaining volumes, order
-- statuses); nothing is updated in place that a rollback would need to remember.

-- The last block applied (per chain), and the hashes of the applied blocks that matter for reorg detection:
-- every block that carried an event, and the last block of every applied range. Older rows are pruned.
CREATE TABLE sync_cursor (
    chain_id    BIGINT PRIMARY KEY,
    block       BIGINT NOT NULL
);

CREATE TABLE sync_blocks (
    chain_id    BIGINT NOT NULL,
    number      BIGINT NOT NULL,
    hash        BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (chain_id, number)
);

-- Deals on chain, whoever matched them: Dragon's settler or anyone calling matchOrders.
CREATE TABLE deals (
    chain_id                BIGINT NOT NULL,
    deal_id                 BYTEA NOT NULL CHECK (length(deal_id) = 32),
    block_number            BIGINT NOT NULL,
    block_timestamp         TIMESTAMPTZ NOT NULL,
    tx_hash                 BYTEA NOT NULL,
    log_index               INTEGER NOT NULL,
    app_hash                BYTEA NOT NULL,
    -- NULL for a deal without a dataset (the event carries a zero hash).
    dataset_hash            BYTEA,
    workerpool_hash         BYTEA NOT NULL,
    request_hash            BYTEA NOT NULL,
    volume                  BIGINT NOT NULL CHECK (volume > 0),
    category                BIGINT NOT NULL,
    -- The deal as the hub stores it (viewDeal), in the market API's JSON form.
    body                    JSONB NOT NULL,
    app                     BYTEA NOT NULL,
    dataset                 BYTEA NOT NULL,
    workerpool              BYTEA NOT NULL,
    requester               BYTEA NOT NULL,
    beneficiary             BYTEA NOT NULL,
    workerpool_price        NUMERIC(78, 0) NOT NULL,
    -- The proposal of Dragon's engine this deal settled, if any.
    proposal_id             BIGINT,
    PRIMARY KEY (chain_id, deal_id)
);

CREATE INDEX deals_by_block ON deals (chain_id, block_number DESC, log_index DESC);
CREATE INDEX deals_by_app_order ON deals (app_hash);
CREATE INDEX deals_by_dataset_order ON deals (dataset_hash) WHERE dataset_hash IS NOT NULL;
CREATE INDEX deals_by_workerpool_order ON deals (workerpool_hash);
CREATE INDEX deals_by_request_order ON deals (request_hash);
CREATE INDEX deals_by_category ON deals (chain_id, category, block_number);

-- The tasks of each deal (taskid = keccak256(dealid, index)), created with it.
CREATE TABLE tasks (
    chain_id    BIGINT NOT NULL,
    task_id     BYTEA NOT NULL CHECK (length(task_id) = 32),
    deal_id     BYTEA NOT NULL,
    idx         BIGINT NOT NULL,
    PRIMARY KEY (chain_id, task_id),
    FOREIGN KEY (chain_id, deal_id) REFERENCES deals (chain_id, deal_id) ON DELETE CASCADE
);

CREATE INDEX tasks_by_deal ON tasks (chain_id, deal_id, idx);

-- Task events in chain order; a task's status is its last event's.
CREATE TABLE task_events (
    chain_id        BIGINT NOT NULL,
    task_id         BYTEA NOT NULL,
    block_number    BIGINT NOT NULL,
    log_index       INTEGER NOT NULL,
    event           TEXT NOT NULL,
    data            JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (chain_id, block_number, log_index)
);

CREATE INDEX task_events_by_task ON task_events (chain_id, task_id, block_number DESC, log_index DESC);

-- Orders that chain sync closed (cancelled on chain, or dead: stake gone, asset transferred) keep the block
-- that closed them, so a reorg above it reopens them.
ALTER TABLE orders ADD COLUMN closed_block BIGINT;
ALTER TABLE orders ADD COLUMN closed_reason TEXT;
CREATE INDEX orders_closed_by_sync ON orders (closed_block) WHERE closed_block IS NOT NULL;
CREATE INDEX orders_by_owner ON orders (owner, kind) WHERE status = 'open';

-- Settlement of the engine's proposals: the transaction that carried each one, and its outcome.
ALTER TABLE deal_proposals ADD COLUMN tx_hash BYTEA;
ALTER TABLE deal_proposals ADD COLUMN batch_index INTEGER;
ALTER TABLE deal_proposals ADD COLUMN deal_id BYTEA;
ALTER TABLE deal_proposals ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deal_proposals ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX deal_proposals_by_tx ON deal_proposals (tx_hash) WHERE tx_hash IS NOT NULL;
CREATE INDEX deal_proposals_by_workerpool ON deal_proposals (workerpool_hash);
CREATE INDEX deal_proposals_by_app ON deal_proposals (app_hash);
CREATE INDEX deal_proposals_by_dataset ON deal_proposals (dataset_hash) WHERE dataset_hash IS NOT NULL;

-- Categories created on chain after start-up carry their block (NULL: read at start-up).
ALTER TABLE categories ADD COLUMN block_number BIGINT;
