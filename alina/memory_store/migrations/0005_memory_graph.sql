-- 0005: the memory graph (entities and typed relations with provenance), decisions, team
-- checkpoints, prompt versions and alerts. Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS entities (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('asset', 'strategy', 'model', 'agent', 'alert', 'run', 'tool')),
    name       text NOT NULL,
    attrs      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, name)
);

CREATE TABLE IF NOT EXISTS relations (
    id          bigserial PRIMARY KEY,
    src         bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    rel         text NOT NULL CHECK (rel IN ('decided', 'caused', 'used', 'observed', 'contradicted')),
    dst         bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    fact        text,                                   -- what was decided/observed, in words
    run_id      text REFERENCES runs (id) ON DELETE SET NULL,   -- provenance
    message_seq integer,                                         -- provenance
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS relations_src_idx ON relations (src, created_at DESC);
CREATE INDEX IF NOT EXISTS relations_dst_idx ON relations (dst, created_at DESC);

CREATE TABLE IF NOT EXISTS decisions (
    id          bigserial PRIMARY KEY,
    run_id      text REFERENCES runs (id) ON DELETE CASCADE,
    message_seq integer,
    agent       text NOT NULL,
    decision    text NOT NULL,
    rationale   text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS decisions_run_idx ON decisions (run_id);

CREATE TABLE IF NOT EXISTS checkpoints (
    run_id          text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    turn            integer NOT NULL,
    team_state      jsonb NOT NULL,
    prompt_versions jsonb NOT NULL,      -- AutoGen state does not hold system prompts
    message_count   integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, turn)
);

CREATE TABLE IF NOT EXISTS prompt_versions (
    agent      text NOT NULL,
    version    integer NOT NULL,
    digest     text NOT NULL,
    system     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, version)
);

CREATE TABLE IF NOT EXISTS alerts (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message     text NOT NULL,
    run_id      text REFERENCES runs (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX IF NOT EXISTS alerts_open_idx ON alerts (created_at DESC) WHERE resolved_at IS NULL;
