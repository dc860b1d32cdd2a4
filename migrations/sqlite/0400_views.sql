-- The stable SQL views (issue #16): what other programs read, documented in docs/sql.md and
-- kept stable across releases like the HTTP API (extended, never renamed or redefined; a
-- change of meaning is a new view). The projection tables under them may change at will.
-- Times are TEXT in format_time form (RFC 3339 UTC, six fractional digits, 'Z'), so they
-- compare as strings; JSON is TEXT. A rebuild of the projections drops and recreates every
-- view from its definition here (sqlite_master.sql) inside its swap (projections/sqlite.py).
-- No '->' operators: a view's text is parsed whenever any SQLite opens the file, and one
-- older than 3.38 would then refuse the whole schema; json_extract is as old as JSON1.

-- The resources now: one row per resource ever seen, removed ones marked (removed = 1).
CREATE VIEW pvetrail_resources AS
SELECT
    r.resource_id     AS id,
    r.cluster         AS cluster,
    r.type            AS type,
    r.node            AS node,
    r.vmid            AS vmid,
    r.name            AS name,
    r.status          AS status,
    r.tags            AS tags,
    r.pool            AS pool,
    r.lock            AS lock,
    r.digest          AS digest,
    r.state           AS state,
    COALESCE(json_extract(r.state, '$.config'), '{}') AS config,
    r.removed         AS removed,
    r.position        AS position,
    r.observed_at     AS observed_at,
    r.first_seen      AS first_seen,
    r.last_seen       AS last_seen,
    o.last_observed_at AS last_observed_at
FROM proj_resources r
LEFT JOIN observations o ON o.resource_id = r.resource_id;

-- Every version of every resource with the span in which it held: [valid_from, valid_to) in
-- effective times, [valid_from_position, valid_to_position) in log positions (NULL: current).
CREATE VIEW pvetrail_versions AS
SELECT
    v.resource_id          AS id,
    v.valid_from_time      AS valid_from,
    v.valid_to_time        AS valid_to,
    v.valid_from_position  AS valid_from_position,
    v.valid_to_position    AS valid_to_position,
    v.cluster              AS cluster,
    v.type                 AS type,
    v.node                 AS node,
    v.vmid                 AS vmid,
    v.name                 AS name,
    v.status               AS status,
    v.tags                 AS tags,
    v.pool                 AS pool,
    v.lock                 AS lock,
    v.digest               AS digest,
    json_set(v.state, '$.config', json(v.config)) AS state,
    v.config               AS config,
    v.ended_by_removal     AS ended_by_removal
FROM (
    -- the config by its key, read only for the rows asked for
    SELECT x.resource_id, x.valid_from_time, x.valid_to_time, x.valid_from_position,
        x.valid_to_position, x.cluster, x.type, x.node, x.vmid, x.name, x.status, x.tags,
        x.pool, x.lock, x.digest, x.state, x.ended_by_removal, COALESCE(
        (SELECT c.config FROM proj_configs c WHERE c.position = x.config_position), '{}'
    ) AS config
    FROM proj_versions x
) v;

-- Field-level changes: one row per field an event changed (as GET /resources/{id}/history
-- lists them: a (re)discovery's initial fields, a config change's new digest), one row with
-- field NULL for an event that changed no field (a removal). Driven by the versions (each
-- change began one; a removal ended one), so time filters on effective_at use their indexes.
-- old/new are each value's text (strings as they are, numbers as digits, true/false, lists
-- and objects as JSON); resource columns are the resource's after the change (before a
-- removal).
CREATE VIEW pvetrail_changes AS
SELECT
    e.position        AS position,
    e.type            AS event,
    x.id              AS id,
    x.cluster         AS cluster,
    x.type            AS type,
    x.node            AS node,
    x.vmid            AS vmid,
    x.name            AS name,
    CASE f.path
        WHEN '$.changes' THEN json_extract(f.value, '$.field')
        WHEN '$.state' THEN f.key
        WHEN '$' THEN 'digest'
        ELSE substr(f.path, 9) || '.' || f.key
    END               AS field,
    -- each value's text; true and false as words (json_extract gives 1 and 0)
    CASE WHEN f.path = '$.changes' THEN
        CASE WHEN json_type(f.value, '$.old') IN ('true', 'false') THEN json_type(f.value, '$.old')
        ELSE CAST(json_extract(f.value, '$.old') AS TEXT) END
    END               AS old,
    CASE WHEN f.path = '$.changes' THEN
        CASE WHEN json_type(f.value, '$.new') IN ('true', 'false') THEN json_type(f.value, '$.new')
        ELSE CAST(json_extract(f.value, '$.new') AS TEXT) END
    WHEN f.type IN ('true', 'false') THEN f.type
    ELSE CAST(f.value AS TEXT)
    END               AS new,
    e.observed_after  AS observed_after,
    e.observed_at     AS observed_at,
    x.effective_at    AS effective_at,
    json_extract(e.actor, '$.user')  AS actor_user,
    json_extract(e.actor, '$.token') AS actor_token,
    json_extract(e.actor, '$.upid')  AS actor_upid
FROM (
    SELECT valid_from_position AS position, valid_from_time AS effective_at,
           resource_id AS id, cluster, type, node, vmid, name
    FROM proj_versions
    UNION ALL
    SELECT valid_to_position, valid_to_time, resource_id, cluster, type, node, vmid, name
    FROM proj_versions
    WHERE ended_by_removal = 1
) x
JOIN events e ON e.position = x.position
LEFT JOIN json_tree(CAST(e.data AS TEXT)) f ON (
    -- a change event's rows
    (f.path = '$.changes' AND f.type = 'object')
    -- a (re)discovery's initial fields, config and pending key by key
    OR (f.path = '$.state' AND f.type <> 'null' AND f.key NOT IN ('id', 'cluster', 'type')
        AND NOT (f.key IN ('config', 'pending') AND f.type = 'object'))
    OR (f.path IN ('$.state.config', '$.state.pending') AND f.type <> 'null')
    -- a config change's new digest, unless a row of its own says it
    OR (f.path = '$' AND f.key = 'digest' AND f.type <> 'null' AND e.type = 'config_changed'
        AND NOT EXISTS (
            SELECT 1 FROM json_each(CAST(e.data AS TEXT), '$.changes') d
            WHERE json_extract(d.value, '$.field') = 'digest'))
);

-- The relation edges with the span in which each held (as pvetrail_versions' spans).
CREATE VIEW pvetrail_edges AS
SELECT
    from_id         AS from_id,
    rel             AS rel,
    to_id           AS to_id,
    attrs           AS attrs,
    since_time      AS valid_from,
    until_time      AS valid_to,
    since_position  AS valid_from_position,
    until_position  AS valid_to_position
FROM proj_edges;
