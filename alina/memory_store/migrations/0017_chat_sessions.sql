-- 0017: console chat sessions (`alina chat`): which runs make up one conversation, in order, so
-- `alina chat --resume [ID]` can show the history and give the team its context back.
-- A run deleted by `alina memory prune` leaves its session (cascade). Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS chat_sessions (
    id          text PRIMARY KEY,                   -- short hex id, shown when the chat starts
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    title       text NOT NULL DEFAULT '',           -- the first task, shortened
    reset_seq   integer NOT NULL DEFAULT 0          -- /reset: runs with seq <= this are not context
);

CREATE INDEX IF NOT EXISTS chat_sessions_updated_idx ON chat_sessions (updated_at DESC);

CREATE TABLE IF NOT EXISTS chat_session_runs (
    session_id  text NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    run_id      text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    PRIMARY KEY (session_id, seq)
);
