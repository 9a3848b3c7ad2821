-- Arrival numbers (orders.seq, the primary key) come in blocks of 4096 from this sequence, so that several
-- instances on one database never hand out the same number (issue 19): block b covers [b * 4096, (b + 1) * 4096).
-- Within one instance the numbers still rise, which is all the book's rebuild and the engine's time priority need.
CREATE SEQUENCE orders_seq_blocks;
-- Past every number already given (nextval returns this + 1).
SELECT setval('orders_seq_blocks', (SELECT COALESCE(MAX(seq), 0) / 4096 + 1 FROM orders));
