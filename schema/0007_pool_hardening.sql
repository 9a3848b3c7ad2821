-- The pool against hostile workers (issue 16): what it needs to hold workers to the chain and to bound them.

-- When the pool saw the replicate's contribution on chain (NULL: not yet, or a row from before this migration,
-- whose reports were not checked). Set once; from then on the result fields are the chain's and stay as they are.
ALTER TABLE pool_replicates ADD COLUMN contributed_at TIMESTAMPTZ;

-- Contributions the pool saw on chain from this worker since it last lost a task for lack of progress: a worker
-- is handed at most 1 + proven replicates at once (and never more than its CPUs), and counts that many slots in
-- GET /capacity, so that CPUs claimed are believed as work proves them.
ALTER TABLE pool_workers ADD COLUMN proven INTEGER NOT NULL DEFAULT 0;

-- The digest of the stored archive, which the upload checked against the one revealed on chain.
ALTER TABLE pool_results ADD COLUMN digest BYTEA;

-- A new login ends the oldest sessions of its worker past a bound; expired sessions are purged.
CREATE INDEX pool_sessions_worker ON pool_sessions (worker, expires_at);
CREATE INDEX pool_sessions_expiry ON pool_sessions (expires_at);
