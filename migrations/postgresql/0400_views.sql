-- The stable SQL views (issue #16): what other programs read, documented in docs/sql.md and
-- kept stable across releases like the HTTP API (extended, never renamed or redefined; a
-- change of meaning is a new view). The projection tables under them may change at will.
-- Times are TIMESTAMPTZ; JSON columns are JSONB (the tables keep TEXT, read only by pvetrail).
-- A rebuild of the projections drops and recreates every view over the tables it swaps from
-- its definition (pg_get_viewdef) and grants (relacl) inside its swap
-- (projections/postgres.py). The reader role (database_reader_role) is granted SELECT on
-- these views alone by `pvetrail migrate` (api/readers.py), not here: its name is configured.

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
    r.state::jsonb    AS state,
    COALESCE(r.state::jsonb -> 'config', '{}') AS config,
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
    v.state::jsonb || jsonb_build_object('config', v.config) AS state,
    v.config               AS config,
    v.ended_by_removal     AS ended_by_removal
FROM (
    -- the config by its key, row by row (as the read side does: never a join that reads
    -- the whole configs table, which the planner chose for the inventory at a time: 0.2 s
    -- instead of 0.03 s at 100,000 events)
    SELECT x.resource_id, x.valid_from_time, x.valid_to_time, x.valid_from_position,
        x.valid_to_position, x.cluster, x.type, x.node, x.vmid, x.name, x.status, x.tags,
        x.pool, x.lock, x.digest, x.state, x.ended_by_removal, COALESCE(
        (SELECT c.config FROM proj_configs c WHERE c.position = x.config_position), '{}'
    )::jsonb AS config
    FROM proj_versions x
) v;

-- Field-level changes: one row per field an event changed (as GET /resources/{id}/history
-- lists them: a (re)discovery's initial fields, a config change's new digest), one row with
-- field NULL for an event that changed no field (a removal). Driven by the versions (each
-- change began one; a removal ended one), so time filters on effective_at use their indexes.
-- old/new are each value's text (strings as they are, numbers as digits, true/false, lists
-- and objects as JSON); resource columns are the resource's after the change (before a
-- removal). The payload is read as json, not jsonb: ->> then gives a list's text as written.
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
    f.field           AS field,
    f.old             AS old,
    f.new             AS new,
    e.observed_after  AS observed_after,
    e.observed_at     AS observed_at,
    x.effective_at    AS effective_at,
    e.actor::json ->> 'user'  AS actor_user,
    e.actor::json ->> 'token' AS actor_token,
    e.actor::json ->> 'upid'  AS actor_upid
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
CROSS JOIN LATERAL (SELECT convert_from(e.data, 'UTF8')::json AS body) p
LEFT JOIN LATERAL (
    -- a change event's rows
    SELECT c.item ->> 'field' AS field, c.item ->> 'old' AS old, c.item ->> 'new' AS new
    FROM json_array_elements(p.body -> 'changes') AS c(item)
    UNION ALL
    -- a config change's new digest, unless a row of its own says it
    SELECT 'digest', NULL, p.body ->> 'digest'
    WHERE e.type = 'config_changed' AND p.body ->> 'digest' IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM json_array_elements(p.body -> 'changes') AS d(item)
          WHERE d.item ->> 'field' = 'digest')
    UNION ALL
    -- a (re)discovery's initial fields, config and pending key by key
    SELECT s.key, NULL, s.value #>> '{}'
    FROM json_each(p.body -> 'state') s
    WHERE json_typeof(s.value) <> 'null' AND s.key NOT IN ('id', 'cluster', 'type')
      AND NOT (s.key IN ('config', 'pending') AND json_typeof(s.value) = 'object')
    UNION ALL
    -- (config and pending each by a json_each of its own, not one over the state's members:
    -- the planner counts 100 rows per json_each, and a json_each per member made the
    -- estimate 25 times larger, enough for JIT compilation: 0.7 s instead of 0.1 s for the
    -- hour of docs/sql.md's example at 100,000 events)
    SELECT n.name || '.' || i.key, NULL, i.value #>> '{}'
    FROM (VALUES ('config'), ('pending')) AS n(name)
    CROSS JOIN LATERAL json_each(CASE json_typeof(p.body -> 'state' -> n.name)
        WHEN 'object' THEN p.body -> 'state' -> n.name END) i
    WHERE json_typeof(i.value) <> 'null'
) f ON TRUE;

-- The relation edges with the span in which each held (as pvetrail_versions' spans).
CREATE VIEW pvetrail_edges AS
SELECT
    from_id         AS from_id,
    rel             AS rel,
    to_id           AS to_id,
    attrs::jsonb    AS attrs,
    since_time      AS valid_from,
    until_time      AS valid_to,
    since_position  AS valid_from_position,
    until_position  AS valid_to_position
FROM proj_edges;
