-- Leases with epoch fencing (issue 19): one row per thing that one instance of a cluster owns at a time (the
-- settler of a chain, `settler:<chain_id>`; later each category's book, `category:<chain_id>:<id>`).
--
-- Expiry is by the DATABASE's clock only (`now() + ttl` when taken or renewed, compared with the database's
-- clock when checked): instances' clocks never meet, so their skew cannot make two holders. `epoch` counts
-- tenures: it grows whenever the lease is taken by another holder, or taken again after it expired, so a write
-- that carries an epoch names one continuous tenure of one holder. Every write a holder makes for the thing it
-- owns checks its (holder, epoch) against this row, locked FOR SHARE, in the write's own transaction
-- (`store/leases.rs` says why that lock mode makes the fence exact).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    -- The instance: random per process start, then host and pid for people reading the table.
    holder      TEXT NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    expires_at  TIMESTAMPTZ NOT NULL,
    -- When the current tenure began, and its last renewal (for people and metrics; nothing decides on them).
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    renewed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
