-- The append-only event log. position is gap-free: appends are serialised by a transaction
-- advisory lock and take head + 1, so positions follow commit order.
-- Streams: a small integer key per stream id, assigned under the append lock (the highest
-- key + 1). The log's per-stream index is keyed by it, which keeps that index narrow: a
-- poll's batch touches every stream, so narrow entries mean fewer index pages written.
-- A stream's key never changes (rows are never updated or deleted).
CREATE TABLE streams (
    stream_key  BIGINT  PRIMARY KEY,
    stream_id   TEXT    NOT NULL UNIQUE
);

CREATE TABLE events (
    position        BIGINT      PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
    stream_key      BIGINT      NOT NULL,   -- streams.stream_key of stream_id
    version         INTEGER     NOT NULL,
    type            TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL,
    observed_at     TIMESTAMPTZ NOT NULL,
    observed_after  TIMESTAMPTZ,
    recorded_at     TIMESTAMPTZ NOT NULL,
    actor           TEXT,               -- JSON {"token","upid","user"} or NULL
    correlation_id  TEXT,
    data            BYTEA       NOT NULL,   -- the payload's JSON bytes, exactly as appended
    prev_hash       TEXT        NOT NULL,
    hash            TEXT        NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream_key, version)
);

CREATE FUNCTION pvetrail_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pvetrail: the % table is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'raise_exception';
END;
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION pvetrail_events_append_only();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION pvetrail_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION pvetrail_events_append_only();
CREATE TRIGGER streams_no_update BEFORE UPDATE ON streams
    FOR EACH ROW EXECUTE FUNCTION pvetrail_events_append_only();
CREATE TRIGGER streams_no_delete BEFORE DELETE ON streams
    FOR EACH ROW EXECUTE FUNCTION pvetrail_events_append_only();
CREATE TRIGGER streams_no_truncate BEFORE TRUNCATE ON streams
    FOR EACH STATEMENT EXECUTE FUNCTION pvetrail_events_append_only();

-- Small values kept beside the log, never in it (e.g. the fingerprint key).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
