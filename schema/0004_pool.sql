-- The pool runtime (`dragon pool`): one workerpool's scheduler state, so that a restarted scheduler resumes
-- every task where it was. The pool usually has a database of its own; these tables share nothing with the
-- exchange's, and live in the same migration list only so that one `Store` serves both.

-- The last block whose SchedulerNotice events were recorded, per workerpool.
CREATE TABLE pool_cursor (
    workerpool  BYTEA PRIMARY KEY CHECK (length(workerpool) = 20),
    block       BIGINT NOT NULL
);

-- The deals of the workerpool, as the hub stored them when the notice was read.
CREATE TABLE pool_deals (
    deal_id     BYTEA PRIMARY KEY CHECK (length(deal_id) = 32),
    workerpool  BYTEA NOT NULL,
    block       BIGINT NOT NULL,
    bot_first   BIGINT NOT NULL,
    bot_size    BIGINT NOT NULL,
    trust       BIGINT NOT NULL,
    category    BIGINT NOT NULL,
    callback    BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per task; `status` follows iExec's scheduler (RECEIVED, INITIALIZED, RUNNING, CONSENSUS_REACHED,
-- AT_LEAST_ONE_REVEALED, RESULT_UPLOADED, FINALIZING, COMPLETED, FAILED). The chain is the truth: each tick
-- the scheduler reads the task on chain and moves this row forward, so a lost update is made again.
CREATE TABLE pool_tasks (
    task_id     BYTEA PRIMARY KEY CHECK (length(task_id) = 32),
    deal_id     BYTEA NOT NULL REFERENCES pool_deals (deal_id),
    idx         BIGINT NOT NULL,
    status      TEXT NOT NULL,
    -- The `results` bytes given to finalize (the result link), once known.
    results     BYTEA,
    -- Why the task failed, for people.
    error       TEXT,
    -- Transaction of the last initialize or finalize sent, for the status API.
    last_tx     BYTEA,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (deal_id, idx)
);
CREATE INDEX pool_tasks_status ON pool_tasks (status, created_at);

-- Workers that joined, with their declared capacity and their last heartbeat.
CREATE TABLE pool_workers (
    address     BYTEA PRIMARY KEY CHECK (length(address) = 20),
    cpu         INTEGER NOT NULL DEFAULT 1,
    memory      BIGINT NOT NULL DEFAULT 0,
    gpu         BOOLEAN NOT NULL DEFAULT false,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Login sessions: a worker keeps its token across a restart of the pool.
CREATE TABLE pool_sessions (
    token       TEXT PRIMARY KEY,
    worker      BYTEA NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- One replicate per (task, worker): the worker's run of the task and what it reported.
CREATE TABLE pool_replicates (
    task_id     BYTEA NOT NULL REFERENCES pool_tasks (task_id),
    worker      BYTEA NOT NULL,
    status      TEXT NOT NULL,
    result_hash BYTEA,
    result_seal BYTEA,
    result_digest BYTEA,
    -- The callback data the worker computed (empty without a callback).
    callback_data BYTEA,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, worker)
);
CREATE INDEX pool_replicates_worker ON pool_replicates (worker, status);

-- The result archives the pool serves (`GET /results/{taskid}`), as the winning worker uploaded them.
CREATE TABLE pool_results (
    task_id     BYTEA PRIMARY KEY REFERENCES pool_tasks (task_id),
    worker      BYTEA NOT NULL,
    zip         BYTEA NOT NULL,
    sha256      BYTEA NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every status change of a task and of its replicates, in order: the task's timeline in the status API, and the
-- stage latencies (initialize, run, contribute, reveal, upload, finalize) for the benchmarks.
CREATE TABLE pool_events (
    id          BIGSERIAL PRIMARY KEY,
    task_id     BYTEA NOT NULL,
    -- NULL for the task's own statuses; the worker for a replicate's.
    worker      BYTEA,
    status      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX pool_events_task ON pool_events (task_id, id);
