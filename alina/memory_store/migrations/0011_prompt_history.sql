-- 0011: the history of every agent's prompt versions (file versions, optimizer candidates,
-- rollbacks) and which one is in use. The older prompt_versions table (0005) stays: checkpoints
-- record the exact text each turn ran with there. Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS prompt_history (
    id             bigserial PRIMARY KEY,
    agent          text NOT NULL,
    version        integer NOT NULL CHECK (version >= 1),
    parent_version integer,                       -- the version it was derived from (rollback: its target)
    system         text NOT NULL,                 -- the full system text, protected section included
    digest         text NOT NULL,                 -- Prompt.digest of system
    protected_hash text NOT NULL,                 -- hash of the protected section ('' when none)
    source         text NOT NULL CHECK (source IN ('file', 'candidate', 'rollback')),
    status         text NOT NULL CHECK (status IN ('active', 'candidate', 'rejected', 'promoted', 'rolled_back')),
    scores         jsonb NOT NULL DEFAULT '{}'::jsonb,
    p_value        double precision,
    reason         text,
    diff           text,                          -- unified diff against parent_version
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz,                   -- when it was promoted, rejected or rolled back
    activated      bigint,                        -- nextval(prompt_activation_seq) when it last went into use
    UNIQUE (agent, version)
);
-- The version an agent runs with is its row with the highest `activated` (a promotion, a
-- rollback or a newer prompt file sets it); a sequence, not a clock, so the order is exact.
CREATE SEQUENCE IF NOT EXISTS prompt_activation_seq;
CREATE INDEX IF NOT EXISTS prompt_history_in_use_idx ON prompt_history (agent, activated DESC)
    WHERE activated IS NOT NULL;
