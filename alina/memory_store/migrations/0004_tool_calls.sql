-- tool_calls: every skill (tool) call made by an agent, written by
-- alina.skills.recorder.PostgresToolCallRecorder. Arguments are stored with secret-looking values
-- masked ('***'). Forward-only and idempotent (IF NOT EXISTS). Needs the runs table (0001).

CREATE TABLE IF NOT EXISTS tool_calls (
    id             bigserial PRIMARY KEY,
    run_id         text REFERENCES runs (id) ON DELETE CASCADE,   -- NULL: called outside a team run
    agent          text NOT NULL,
    tool           text NOT NULL,
    arguments      jsonb NOT NULL DEFAULT '{}'::jsonb,
    result_summary text NOT NULL DEFAULT '',
    duration_ms    double precision NOT NULL CHECK (duration_ms >= 0),
    outcome        text NOT NULL CHECK (outcome IN ('ok', 'error', 'timeout')),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS tool_calls_run_id_idx ON tool_calls (run_id);
CREATE INDEX IF NOT EXISTS tool_calls_tool_created_idx ON tool_calls (tool, created_at DESC);
