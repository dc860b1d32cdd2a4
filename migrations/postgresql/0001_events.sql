-- The append-only event log. position is gap-free: appends are serialised by a transaction
-- advisory lock and take head + 1, so positions follow commit order.
CREATE TABLE events (
    position        BIGINT      PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
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
    CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);

CREATE FUNCTION pvetrail_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pvetrail: the events table is append-only (% refused)', TG_OP
        USING ERRCODE = 'raise_exception';
END;
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION pvetrail_events_append_only();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION pvetrail_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION pvetrail_events_append_only();

-- Small values kept beside the log, never in it (e.g. the fingerprint key).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
