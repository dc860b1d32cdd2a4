-- When each resource was last successfully observed (collectors). Beside the log, outside the
-- hash chain: losing it loses no history, only how stale an answer may be. Bulk-upserted once
-- per poll. Times are TEXT in format_time form (RFC 3339 UTC, 6 fractional digits, 'Z').
CREATE TABLE observations (
    resource_id       TEXT PRIMARY KEY,
    cluster           TEXT NOT NULL,
    last_observed_at  TEXT,     -- the later of the two below
    last_fast_at      TEXT,     -- /cluster/resources and /cluster/status
    last_deep_at      TEXT      -- configs, snapshots, backups, pools, storage definitions
);

CREATE INDEX observations_cluster ON observations (cluster);
