-- 0007: where a run stands at each checkpoint (counters, routing decisions, answer so far), so
-- `alina run --resume` continues the totals instead of restarting them, and how often a run
-- was resumed. Forward-only and idempotent.

ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS position jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS resumes integer NOT NULL DEFAULT 0;
