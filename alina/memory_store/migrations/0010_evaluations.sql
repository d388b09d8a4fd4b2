-- 0010: scores of messages (ALINA's answer check, the specialists' output checks), written with
-- the turn that produced the message. Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS evaluations (
    id             bigserial PRIMARY KEY,
    run_id         text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    message_seq    integer NOT NULL,
    name           text NOT NULL,                 -- answer_check | output_check
    agent          text NOT NULL,
    score          double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    passed         boolean NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    prompt_version integer,
    model          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, message_seq, name)
);
CREATE INDEX IF NOT EXISTS evaluations_agent_idx ON evaluations (agent, created_at DESC);
