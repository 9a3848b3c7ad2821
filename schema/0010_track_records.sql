-- Track records (docs/track-records.md) are derived by SQL from what chain sync stores, so a reorg's rollback
-- (deleting the orphaned blocks' rows) undoes them with nothing else to remember. They need two times the
-- store did not keep: when each task event's block was mined (deal to finalize), and the chain's own time at
-- the last applied block (deadlines passed, the last 30 days), taken from the block headers sync reads anyway.
-- NULL for rows written before this version (task events get theirs from a start-up backfill).
ALTER TABLE task_events ADD COLUMN block_timestamp TIMESTAMPTZ;
ALTER TABLE sync_blocks ADD COLUMN block_timestamp TIMESTAMPTZ;
CREATE INDEX deals_by_workerpool ON deals (chain_id, workerpool, block_number);
CREATE INDEX deals_by_time ON deals (chain_id, block_timestamp);
CREATE INDEX task_events_outcomes ON task_events (chain_id, task_id) WHERE event IN ('TaskFinalize', 'TaskClaimed');
CREATE INDEX task_events_untimed ON task_events (chain_id, block_number) WHERE block_timestamp IS NULL;
