-- 0008: the system mode's history (normal -> degraded -> safe -> halt), with who changed it and
-- why. The current mode lives in Redis (alina:mode) for every process to read; this table is
-- the durable record and the fallback when Redis is away. Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS mode_transitions (
    id         bigserial PRIMARY KEY,
    from_mode  text NOT NULL CHECK (from_mode IN ('normal', 'degraded', 'safe', 'halt')),
    to_mode    text NOT NULL CHECK (to_mode IN ('normal', 'degraded', 'safe', 'halt')),
    actor      text NOT NULL,          -- operator | resilience | recovery | store | ...
    reason     text NOT NULL,
    automatic  boolean NOT NULL DEFAULT false,
    run_id     text REFERENCES runs (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mode_transitions_recent_idx ON mode_transitions (created_at DESC);

-- Alerts carry the actor that raised them and what closed them.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS source text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolution text;

-- Decisions (order actions, ALINA's answers) are written with their turn: one per message.
CREATE UNIQUE INDEX IF NOT EXISTS decisions_run_message_idx
    ON decisions (run_id, message_seq) WHERE message_seq IS NOT NULL;
