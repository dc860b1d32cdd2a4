-- When each resource was last successfully observed (collectors). Beside the log, outside the
-- hash chain: losing it loses no history, only how stale an answer may be. Bulk-upserted once
-- per poll.
CREATE TABLE observations (
    resource_id       TEXT PRIMARY KEY,
    cluster           TEXT NOT NULL,
    last_observed_at  TIMESTAMPTZ,  -- the later of the two below
    last_fast_at      TIMESTAMPTZ,  -- /cluster/resources and /cluster/status
    last_deep_at      TIMESTAMPTZ   -- configs, snapshots, backups, pools, storage definitions
);

CREATE INDEX observations_cluster ON observations (cluster);
