-- The append-only event log. position is gap-free: each append takes head + 1 inside
-- BEGIN IMMEDIATE, so positions follow commit order.
-- Streams: a small integer key per stream id. The log's per-stream index is keyed by it,
-- which keeps that index narrow: a poll's batch touches every stream, so each append writes
-- a leaf page of that index per stream or so, and narrow entries mean fewer pages.
-- A stream's key never changes (rows are never updated or deleted).
CREATE TABLE streams (
    stream_key  INTEGER PRIMARY KEY,
    stream_id   TEXT    NOT NULL UNIQUE
);

CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    stream_id       TEXT    NOT NULL,
    stream_key      INTEGER NOT NULL,   -- streams.stream_key of stream_id
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
    CONSTRAINT events_stream_version UNIQUE (stream_key, version)
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'pvetrail: the events table is append-only (UPDATE refused)');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'pvetrail: the events table is append-only (DELETE refused)');
END;

CREATE TRIGGER streams_no_update BEFORE UPDATE ON streams
BEGIN
    SELECT RAISE(ABORT, 'pvetrail: the streams table is append-only (UPDATE refused)');
END;

CREATE TRIGGER streams_no_delete BEFORE DELETE ON streams
BEGIN
    SELECT RAISE(ABORT, 'pvetrail: the streams table is append-only (DELETE refused)');
END;

-- Small values kept beside the log, never in it (e.g. the fingerprint key).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
