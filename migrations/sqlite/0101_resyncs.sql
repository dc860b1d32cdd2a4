-- The resync queue (collectors): what was asked, by whom, and how it went. Beside the log,
-- outside the hash chain. Any process records a request; the cluster's collector leader runs
-- it. A request for a scope already queued joins that row (the partial unique index), so a
-- burst of requests is one poll, plus at most one follow-up queued while it runs.
-- Times are TEXT in format_time form (RFC 3339 UTC, 6 fractional digits, 'Z').
CREATE TABLE resyncs (
    id               TEXT PRIMARY KEY,
    cluster          TEXT NOT NULL,
    node             TEXT,                 -- NULL: every node
    vmid             INTEGER,              -- NULL: every guest
    scope            TEXT NOT NULL,        -- cluster, node and vmid in one key
    requested_by     TEXT NOT NULL,        -- a token's name, 'webhook' or 'anonymous'
    requests         INTEGER NOT NULL DEFAULT 1,  -- how many requests joined it
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    requested_at     TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    events_appended  INTEGER NOT NULL DEFAULT 0,
    error            TEXT
);

CREATE UNIQUE INDEX resyncs_one_queued ON resyncs (scope) WHERE status = 'queued';
CREATE INDEX resyncs_by_status ON resyncs (cluster, status, requested_at);
CREATE INDEX resyncs_finished ON resyncs (finished_at);
