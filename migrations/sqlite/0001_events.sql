-- The append-only event log. position is gap-free: each append takes head + 1 inside
-- BEGIN IMMEDIATE, so positions follow commit order.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    stream_id       TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    observed_at     TEXT    NOT NULL,   -- RFC 3339 UTC, 6 fractional digits, 'Z'
    observed_after  TEXT,
    recorded_at     TEXT    NOT NULL,
    actor           TEXT,               -- JSON {"token","upid","user"} or NULL
    correlation_id  TEXT,
    data            BLOB    NOT NULL,   -- the payload's JSON bytes, exactly as appended
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'pvetrail: the events table is append-only (UPDATE refused)');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'pvetrail: the events table is append-only (DELETE refused)');
END;

-- Small values kept beside the log, never in it (e.g. the fingerprint key).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
