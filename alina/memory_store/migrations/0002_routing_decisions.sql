-- 0002: every routing decision of a run (who speaks next, how it was decided, how sure).
-- Forward-only and idempotent (IF NOT EXISTS), so replaying it on an existing schema is harmless.

CREATE TABLE IF NOT EXISTS routing_decisions (
    run_id      text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         integer NOT NULL,               -- 1, 2, ... within the run, in decision order
    speaker     text,                           -- NULL: the router left the choice to AutoGen's selector
    method      text NOT NULL,                  -- tool|safe|mention|rules|lexical|follow_up|done|model|fallback
    confidence  double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    candidates  jsonb NOT NULL DEFAULT '[]'::jsonb,
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

CREATE INDEX IF NOT EXISTS routing_decisions_method_idx ON routing_decisions (method, created_at DESC);
