-- The whole inventory at a time walks proj_resources in resource_id order and needs only
-- each resource's first_position and first_seen from it (the versions table gives the rest).
-- This index holds exactly those, so the walk never visits the table's wide rows (the whole
-- state as JSON): one B-tree lookup less per resource. A rebuild copies it to the new table
-- with the others. (PostgreSQL answers the whole inventory with one scan of
-- proj_versions_span instead and has no use for it.)
CREATE INDEX proj_resources_scan ON proj_resources (resource_id, first_position, first_seen);
