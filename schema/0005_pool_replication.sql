-- Replication and fault tolerance in the pool runtime: how many live replicates a task wants. The scheduler
-- works it out each tick from the contributions on chain (PoCo's weighted consensus: at trust 3, two newcomers
-- that agree, one more per disagreement); `claim_task` hands out replicates until the task has that many that
-- are not FAILED, ABORTED or WORKER_LOST. NULL (rows from before this migration) means the deal's trust.
ALTER TABLE pool_tasks ADD COLUMN replicates_wanted INTEGER;

