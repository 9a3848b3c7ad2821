-- The identity of the cluster this database serves (issue 19): random, made once, shared by every instance on
-- this database. It names the cluster's NATS subjects (`dragon.<id>.feed...`, `.route...`, `.book...`), so that
-- two clusters on one NATS server (two databases for the same chain and hub: staging and production, or a
-- benchmark's runs) never hear each other's orders, routes or feed.
CREATE TABLE cluster_identity (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    id  TEXT NOT NULL CHECK (id ~ '^[0-9a-f]{16}$')
);
INSERT INTO cluster_identity (id) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 16));
