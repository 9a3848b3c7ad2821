-- Publication's write made lighter, and chain sync's lookups given the indexes they need (issue 20). The INSERT
-- into `orders` was PostgreSQL's whole cost per order:
--
-- * `body` becomes TEXT. The server validates every order before it stores it, reads the body back only as
--   text, and no SQL looks inside it, so JSONB's parse and binary form were paid on every insert for nothing.
--   The text is the record's own JSON, byte for byte what the API shows.
-- * The three partial indexes on open orders (by signer, by asset, by owner) served no query: the book answers
--   publication's per-signer and per-asset questions from memory, and the one query that looks orders up by
--   owner or asset (`orders::live_by`, run by chain sync on every registry transfer and every escrow event of an
--   account with orders) asks for `status IN ('open', 'filled')`, which a `status = 'open'` predicate does not
--   cover, so it scanned the whole table inside sync's transaction. They are replaced by the two that query
--   uses: by asset, and by owner (the signer is the owner: publication stores one address in both columns).
ALTER TABLE orders ALTER COLUMN body TYPE TEXT USING body::text;
DROP INDEX IF EXISTS orders_by_signer;
DROP INDEX IF EXISTS orders_by_asset;
DROP INDEX IF EXISTS orders_by_owner;
CREATE INDEX orders_live_by_owner ON orders (owner, kind) WHERE status IN ('open', 'filled');
CREATE INDEX orders_live_by_asset ON orders (asset, kind) WHERE status IN ('open', 'filled');
