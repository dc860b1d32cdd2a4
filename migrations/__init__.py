"""SQL migrations, one folder per dialect (``sqlite/``, ``postgresql/``), applied in name order.

Files are ``NNNN_name.sql``. Numbers 0001-0099 belong to the event store, 0100-0199 to the
collectors, 0200-0299 to the projections, 0300-0399 to the API, 0400-0499 to the stable SQL
views (docs/sql.md). An applied file is never edited: its checksum is recorded, and a changed
file stops every later migrate.
"""
