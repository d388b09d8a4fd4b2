-- 0001: team runs and the messages exchanged during each run.
-- Forward-only and idempotent (IF NOT EXISTS), so replaying it on an existing schema is harmless.

CREATE TABLE IF NOT EXISTS runs (
    id                text PRIMARY KEY,                 -- uuid4 hex
    task              text NOT NULL,
    status            text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'completed', 'failed', 'stopped')),
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    config_json       jsonb NOT NULL DEFAULT '{}'::jsonb,
    turns             integer NOT NULL DEFAULT 0,
    model_calls       integer NOT NULL DEFAULT 0,
    tool_calls        integer NOT NULL DEFAULT 0,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    wall_s            double precision,
    error             text
);

CREATE INDEX IF NOT EXISTS runs_started_at_idx ON runs (started_at DESC);

CREATE TABLE IF NOT EXISTS messages (
    id                bigserial PRIMARY KEY,
    run_id            text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq               integer NOT NULL,
    source            text NOT NULL,
    type              text NOT NULL,
    content           text NOT NULL,
    prompt_tokens     integer,
    completion_tokens integer,
    latency_ms        double precision,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, seq)
);
