-- 0009: every event gets a unique id, assigned when it is emitted, so an event written again
-- (a batch retried after its commit reply was lost, a spool file flushed a second time after a
-- crash mid-flush) is stored once: the writer inserts those with ON CONFLICT (event_id) DO NOTHING.
-- Rows written before this migration keep a NULL id (NULLs never conflict). Forward-only and idempotent.

ALTER TABLE events ADD COLUMN IF NOT EXISTS event_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id_key ON events (event_id);
