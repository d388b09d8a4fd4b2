-- 0013: what the job queue ran, when: one row per scheduled occurrence or submitted run (the
-- queue's own tables belong to Procrastinate and are created by its schema tooling), and the
-- paused jobs. Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS job_occurrences (
    id             bigserial PRIMARY KEY,
    job_name       text NOT NULL,               -- a key of jobs: in config.yaml, or 'submit'
    kind           text NOT NULL,               -- team | review | reconcile | retention
    scheduled_for  timestamptz,                 -- the occurrence's scheduled time (null: submitted)
    queue_job_id   bigint,                      -- procrastinate_jobs.id of its latest enqueue
    run_id         text,                        -- team runs: the run (runs.id once it started)
    task           text,
    priority       text,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped')),
    detail         text,
    worker         text,                        -- host:pid of the process that last ran it
    attempts       integer NOT NULL DEFAULT 0,
    enqueued_at    timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz
);

-- Exactly once, checked by the database: one row per job and scheduled time, one per run.
CREATE UNIQUE INDEX IF NOT EXISTS job_occurrences_slot_idx
    ON job_occurrences (job_name, scheduled_for) WHERE scheduled_for IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS job_occurrences_run_idx ON job_occurrences (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS job_occurrences_name_idx ON job_occurrences (job_name, enqueued_at DESC);

CREATE TABLE IF NOT EXISTS job_state (
    name        text PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text
);
