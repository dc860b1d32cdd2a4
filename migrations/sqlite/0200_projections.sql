-- Projections (issue #4): tables folded from the event log, a pure function of it.
-- Times are TEXT in format_time form (sortable); JSON is TEXT; tags are stored as ';a;b;' so
-- that one LIKE finds a tag on both backends. "Effective" times: a change counts from its
-- observed_at, but never before an earlier change of the same resource (see projections/fold.py).

-- One checkpoint per projection: the last position applied, advanced in the same transaction
-- as the projection's rows.
CREATE TABLE projection_checkpoints (
    name        TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL
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
    position        INTEGER NOT NULL,   -- the event of its last change
    observed_at     TEXT    NOT NULL,   -- effective time of its last change
    first_position  INTEGER NOT NULL,
    first_seen      TEXT    NOT NULL,   -- observed_at of its first discovery
    last_seen       TEXT,                -- when removed: the last observation that showed it
    config_position INTEGER NOT NULL    -- its config's row in proj_configs (versions)
);

-- Versions: each resource's successive states with the span (positions and effective times,
-- [from, to)) in which each held. "As of T" is one index probe per resource.
CREATE TABLE proj_versions (
    resource_id          TEXT    NOT NULL,
    valid_from_position  INTEGER NOT NULL,
    valid_to_position    INTEGER,          -- NULL: still current
    valid_from_time      TEXT    NOT NULL,
    valid_to_time        TEXT,
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
    config_position      INTEGER NOT NULL,   -- the proj_configs row of its config
    ended_by_removal     INTEGER NOT NULL   -- 1: a removal ended it (no successor)
);
-- The key as a unique index rather than a PRIMARY KEY clause: a rebuild fills a copy of the
-- table first and builds its indexes afterwards, which a key inside the table's DDL prevents.
CREATE UNIQUE INDEX proj_versions_key ON proj_versions (resource_id, valid_from_position);
CREATE INDEX proj_versions_at ON proj_versions (resource_id, valid_from_time, valid_from_position);
CREATE INDEX proj_versions_from_time ON proj_versions (valid_from_time);
-- Net change between two times: versions that began in the window, and removals in it.
CREATE INDEX proj_versions_removed ON proj_versions (valid_to_time) WHERE ended_by_removal = 1;

-- Configs, kept once per change of a resource's config (most events change no config):
-- a version refers to the config in effect by the position of the event that set it.
CREATE TABLE proj_configs (
    position     INTEGER PRIMARY KEY,
    resource_id  TEXT    NOT NULL,
    config       TEXT    NOT NULL    -- JSON object, sorted keys
);

-- Relations: edges between resources, each with the span in which it held.
CREATE TABLE proj_edges (
    from_id         TEXT    NOT NULL,
    rel             TEXT    NOT NULL,
    to_id           TEXT    NOT NULL,
    attrs           TEXT    NOT NULL,   -- JSON object, sorted keys ('{}' when none)
    since_position  INTEGER NOT NULL,
    since_time      TEXT    NOT NULL,
    until_position  INTEGER,            -- NULL: still holds
    until_time      TEXT
);
CREATE UNIQUE INDEX proj_edges_key ON proj_edges (from_id, rel, to_id, attrs, since_position);
CREATE UNIQUE INDEX proj_edges_open ON proj_edges (from_id, rel, to_id, attrs)
    WHERE until_position IS NULL;
CREATE INDEX proj_edges_from_at ON proj_edges (from_id, since_time);
CREATE INDEX proj_edges_to_at ON proj_edges (to_id, since_time);
