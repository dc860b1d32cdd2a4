-- Resource ids compare byte for byte (COLLATE "C"), as SQLite compares them, instead of by
-- the database's collation. Every answer ordered by id (the inventory, its cursors, the
-- relation graph) then comes in the same order on both backends whatever locale the
-- database was created with, and sorting or comparing ids no longer calls the C library's
-- strcoll: sorting the 10,000 versions of a whole inventory at a time took ~20 ms of its
-- ~65 ms at the server with the database's C.UTF-8 collation, which PostgreSQL 15 does not
-- treat as plain C. All id columns change together: two columns compared with each other
-- must share a collation. A rebuild's new tables copy it (CREATE TABLE ... LIKE).
ALTER TABLE proj_resources ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE proj_versions ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE proj_configs ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE proj_edges ALTER COLUMN from_id TYPE TEXT COLLATE "C";
ALTER TABLE proj_edges ALTER COLUMN to_id TYPE TEXT COLLATE "C";
ALTER TABLE observations ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
