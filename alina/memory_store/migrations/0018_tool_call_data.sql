-- 0018: a tool call's structured result and the id the model gave the call.
-- A skill may return a ToolOutput: the text the model reads plus the data facts are read from
-- (a health verdict and its alerts, the pair a market figure is about, an order). `data` keeps
-- that data (secrets masked), `call_id` pairs it with the call in the run's stored messages, so
-- the memory writer of a resumed run reads the same data the first attempt produced.
-- Forward-only and idempotent.

ALTER TABLE tool_calls ADD COLUMN IF NOT EXISTS call_id text;
ALTER TABLE tool_calls ADD COLUMN IF NOT EXISTS data jsonb;
CREATE INDEX IF NOT EXISTS tool_calls_run_call_idx ON tool_calls (run_id, call_id) WHERE data IS NOT NULL;
