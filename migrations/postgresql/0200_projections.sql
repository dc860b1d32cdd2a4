-- Projections (issue #4): tables folded from the event log, a pure function of it.
-- Times are TIMESTAMPTZ; JSON is TEXT (read only by pvetrail); tags are stored as ';a;b;' so
-- that one LIKE finds a tag on both backends. "Effective" times: a change counts from its
-- observed_at, but never before an earlier change of the same resource (see projections/fold.py).

-- One checkpoint per projection: the last position applied, advanced in the same transaction
-- as the projection's rows.
CREATE TABLE projection_checkpoints (
    name        TEXT    PRIMARY KEY,
    position    BIGINT NOT NULL
);
INSERT INTO projection_checkpoints (name, position) VALUES ('resources', 0);
INSERT INTO projection_checkpoints (name, position) VALUES ('versions', 0);
INSERT INTO projection_checkpoints (name, position) VALUES ('relations', 0);

-- Current state: one row per resource ever seen; removed ones are marked, not forgotten.
CREATE TABLE proj_resources (
    resource_id     TEXT    PRIMARY KEY,
    cluster         TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    node            TEXT,
    vmid            INTEGER,
    name            TEXT,
    status          TEXT,
    tags            TEXT    NOT NULL,   -- ';a;b;' ('' when none)
    pool            TEXT,
    lock            TEXT,
    digest          TEXT,
    state           TEXT    NOT NULL,   -- the whole state as JSON (secrets already redacted)
    removed         INTEGER NOT NULL,   -- 1 after removed/snapshot_removed/backup_removed
    position        BIGINT NOT NULL,   -- the event of its last change
    observed_at     TIMESTAMPTZ    NOT NULL,   -- effective time of its last change
    first_position  BIGINT NOT NULL,
    first_seen      TIMESTAMPTZ    NOT NULL,   -- observed_at of its first discovery
    last_seen       TIMESTAMPTZ,                -- when removed: the last observation that showed it
    config_position BIGINT NOT NULL    -- its config's row in proj_configs (versions)
);

-- Versions: each resource's successive states with the span (positions and effective times,
-- [from, to)) in which each held. "As of T" is one index probe per resource.
CREATE TABLE proj_versions (
    resource_id          TEXT    NOT NULL,
    valid_from_position  BIGINT NOT NULL,
    valid_to_position    BIGINT,          -- NULL: still current
    valid_from_time      TIMESTAMPTZ    NOT NULL,
    valid_to_time        TIMESTAMPTZ,
    cluster              TEXT    NOT NULL,
    type                 TEXT    NOT NULL,
    node                 TEXT,
    vmid                 INTEGER,
    name                 TEXT,
    status               TEXT,
    tags                 TEXT    NOT NULL,
    pool                 TEXT,
    lock                 TEXT,
    digest               TEXT,
    state                TEXT    NOT NULL,   -- the state without its config (see config_position)
    config_position      BIGINT NOT NULL,   -- the proj_configs row of its config
    ended_by_removal     INTEGER NOT NULL,  -- 1: a removal ended it (no successor)
    PRIMARY KEY (resource_id, valid_from_position)
);
CREATE INDEX proj_versions_at ON proj_versions (resource_id, valid_from_time, valid_from_position);
CREATE INDEX proj_versions_from_time ON proj_versions (valid_from_time);
-- Net change between two times: versions that began in the window, and removals in it.
CREATE INDEX proj_versions_removed ON proj_versions (valid_to_time) WHERE ended_by_removal = 1;
-- The whole inventory at a time T: each version's span of effective times as a point (x: from,
-- y: to, in seconds; an open span's y is beyond any time), so the versions that held at T are
-- the points in one box (x <= T < y), found by one scan of this index instead of a probe per
-- resource (projections/queries.py writes the same expression). A point index is built by
-- sorting (seconds at 1M versions), a range type's GiST by inserting (several times longer).
CREATE INDEX proj_versions_span ON proj_versions USING gist (point(
    extract(epoch from valid_from_time - timestamptz 'epoch')::float8,
    coalesce(extract(epoch from valid_to_time - timestamptz 'epoch')::float8, 1e15::float8)));

-- Configs, kept once per change of a resource's config (most events change no config):
-- a version refers to the config in effect by the position of the event that set it.
CREATE TABLE proj_configs (
    position     BIGINT PRIMARY KEY,
    resource_id  TEXT    NOT NULL,
    config       TEXT    NOT NULL    -- JSON object, sorted keys
);

-- Relations: edges between resources, each with the span in which it held.
CREATE TABLE proj_edges (
    from_id         TEXT    NOT NULL,
    rel             TEXT    NOT NULL,
    to_id           TEXT    NOT NULL,
    attrs           TEXT    NOT NULL,   -- JSON object, sorted keys ('{}' when none)
    since_position  BIGINT NOT NULL,
    since_time      TIMESTAMPTZ    NOT NULL,
    until_position  BIGINT,            -- NULL: still holds
    until_time      TIMESTAMPTZ,
    PRIMARY KEY (from_id, rel, to_id, attrs, since_position)
);
CREATE UNIQUE INDEX proj_edges_open ON proj_edges (from_id, rel, to_id, attrs)
    WHERE until_position IS NULL;
CREATE INDEX proj_edges_from_at ON proj_edges (from_id, since_time);
CREATE INDEX proj_edges_to_at ON proj_edges (to_id, since_time);
