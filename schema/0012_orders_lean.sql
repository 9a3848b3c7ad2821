-- Publication's write made lighter (issue 20). The INSERT into `orders` was PostgreSQL's whole cost per order:
--
-- * `body` becomes TEXT. The server validates every order before it stores it, reads the body back only as
--   text (`body::text`), and no SQL looks inside it, so JSONB's parse and binary form were paid on every insert
--   for nothing. The text is the record's own JSON, byte for byte what the API shows.
-- * Three partial indexes on open orders (by signer, by asset, by owner) go. No query uses them: the book
--   answers every per-signer and per-asset question from memory, and the explorer's search does not filter on
--   `status = 'open'`, so their predicate never applied. Each cost a B-tree insert per order.
ALTER TABLE orders ALTER COLUMN body TYPE TEXT USING body::text;
DROP INDEX IF EXISTS orders_by_signer;
DROP INDEX IF EXISTS orders_by_asset;
DROP INDEX IF EXISTS orders_by_owner;
