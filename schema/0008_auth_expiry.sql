-- Challenges and sessions expire: the server purges them every few seconds (not on each insert, which scanned
-- the whole table for every anonymous GET /challenge), through an index on the expiry.
CREATE INDEX challenges_expiry ON challenges (expires_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);
