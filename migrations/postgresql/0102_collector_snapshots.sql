-- The collectors' own state (each cluster's fold of the log: live resources, stream versions,
-- tasks remembered), as of a log position, so that a start folds only the events after it.
-- Beside the log, outside the hash chain: losing it (or any doubt about it) costs one fold of
-- the whole log, never history. `event_hash` is the hash of the event at `position`: a
-- snapshot of another log (a restored or replaced database) is never used. `format` says
-- which code wrote it; any other is ignored.
CREATE TABLE collector_snapshots (
    cluster     TEXT PRIMARY KEY,
    position    BIGINT NOT NULL,
    event_hash  TEXT NOT NULL,
    format      TEXT NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL,
    data        BYTEA NOT NULL
);
