-- Categories carry the CreateCategory event that made them (the peer's transactionHash and blockTimestamp;
-- block_number exists since 0003), the hub's default categories included. NULL until chain sync (or the
-- start-up backfill for a database that predates this) has read the event.
ALTER TABLE categories ADD COLUMN transaction_hash BYTEA;
ALTER TABLE categories ADD COLUMN block_timestamp TIMESTAMPTZ;
CREATE INDEX categories_by_ref ON categories (chain_id, work_clock_time_ref, catid);
