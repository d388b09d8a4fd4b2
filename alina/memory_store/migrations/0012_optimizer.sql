-- 0012: the optimizer's critic loop. The review queue (a low evaluation score queues a review of
-- its agent, durably, by a trigger on evaluations), the rejected candidates it remembers and
-- shows to the critic (hash + summary), and the model each agent runs on (its ladder rung).
-- Forward-only and idempotent.

-- The score below which an evaluation queues a review (optimizer.threshold; the loop writes it).
CREATE TABLE IF NOT EXISTS optimizer_settings (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    threshold  double precision NOT NULL DEFAULT 0.7 CHECK (threshold >= 0 AND threshold <= 1),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO optimizer_settings (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS optimizer_reviews (
    id          bigserial PRIMARY KEY,
    agent       text NOT NULL,
    trigger     text NOT NULL CHECK (trigger IN ('score', 'rolling', 'manual')),
    score       double precision,                 -- the score that queued it
    run_id      text,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'refused', 'failed')),
    queued_at   timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    report      jsonb                              -- the review's report (figures spent, outcome)
);
-- At most one queued review per agent: later low scores fold into it.
CREATE UNIQUE INDEX IF NOT EXISTS optimizer_reviews_queued_idx ON optimizer_reviews (agent)
    WHERE status = 'queued';

CREATE OR REPLACE FUNCTION optimizer_queue_low_score() RETURNS trigger AS $$
BEGIN
    IF NEW.score < (SELECT threshold FROM optimizer_settings WHERE id) THEN
        INSERT INTO optimizer_reviews (agent, trigger, score, run_id)
        VALUES (NEW.agent, 'score', NEW.score, NEW.run_id)
        ON CONFLICT (agent) WHERE status = 'queued' DO NOTHING;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS evaluations_queue_review ON evaluations;
CREATE TRIGGER evaluations_queue_review AFTER INSERT ON evaluations
    FOR EACH ROW EXECUTE FUNCTION optimizer_queue_low_score();

-- Candidates the gate or the guard refused: shown to the critic so it does not propose them again.
CREATE TABLE IF NOT EXISTS optimizer_rejections (
    id         bigserial PRIMARY KEY,
    agent      text NOT NULL,
    digest     text NOT NULL,                     -- system_digest of the candidate's text
    version    integer,                            -- its prompt_history version (null: never stored)
    origin     text NOT NULL,                      -- critic | fewshot | model | ...
    model      text,                               -- the model it was evaluated on
    summary    text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent, digest, model)
);
CREATE INDEX IF NOT EXISTS optimizer_rejections_agent_idx ON optimizer_rejections (agent, created_at DESC);

-- The model each agent runs on (a key under models:); the latest row per agent is in use.
CREATE TABLE IF NOT EXISTS agent_models (
    id         bigserial PRIMARY KEY,
    agent      text NOT NULL,
    model      text NOT NULL,
    previous   text,
    reason     text NOT NULL,
    p_value    double precision,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS agent_models_agent_idx ON agent_models (agent, id DESC);
