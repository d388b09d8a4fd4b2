-- 0006: a generic append-only event log written in batches by memory_store/writer.py.
-- run_id has no foreign key on purpose: one event naming an unknown run must not fail the whole
-- batch it is copied in (events are a log, runs are the record). Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS events (
    id         bigserial PRIMARY KEY,
    run_id     text,
    kind       text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()     -- when the event happened, not when written
);

CREATE INDEX IF NOT EXISTS events_run_idx ON events (run_id, id) WHERE run_id IS NOT NULL;
