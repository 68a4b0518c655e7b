-- readings, events and reading_summaries are written only by the writer, each row from a device
-- row it read or inserted in the same transaction, and no device or site is ever deleted: their
-- foreign keys can never fail. On PostgreSQL each check is a trigger and a row lock on the
-- device (the writer's backend spent 11 % of its CPU on them; without them 1.13× the webhooks/s
-- in A/B runs, bench/README.md). SQLite keeps them: there a check is an index lookup in process.
-- The store's tests check that no row of these tables names a missing device or site.
ALTER TABLE readings DROP CONSTRAINT readings_device_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_device_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_site_id_fkey;
ALTER TABLE reading_summaries DROP CONSTRAINT reading_summaries_device_id_fkey;
