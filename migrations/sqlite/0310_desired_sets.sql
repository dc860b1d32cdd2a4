-- Desired-state sets stored with PUT /desired/{name} (drift reports). Beside the log, outside
-- the hash chain: a set is what someone wants, not something that happened. The document is
-- the set's checked JSON; stored_by the token's name ('anonymous' without tokens). Times are
-- TEXT in format_time form (RFC 3339 UTC, 6 fractional digits, 'Z').
CREATE TABLE desired_sets (
    name       TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    stored_by  TEXT NOT NULL,
    stored_at  TEXT NOT NULL
);
