-- 0015: what the observer did (or proposes to do) about each alert. Actions configured with
-- `approve: true` wait here as `pending` until an operator approves or rejects them
-- (`alina alerts approve|reject ID`); the observer that proposed one (owner = host:pid) applies
-- an approved one on its next evaluation. Forward-only and idempotent.

CREATE TABLE IF NOT EXISTS alert_actions (
    id          bigserial PRIMARY KEY,
    alert_id    bigint REFERENCES alerts (id) ON DELETE SET NULL,
    rule        text NOT NULL,
    action      text NOT NULL,
    reason      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'applied', 'undone',
                                                'cancelled', 'rate_limited', 'failed', 'unavailable')),
    detail      text NOT NULL DEFAULT '',
    owner       text NOT NULL,
    decided_by  text,
    decided_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_actions_recent_idx ON alert_actions (id DESC);
CREATE INDEX IF NOT EXISTS alert_actions_waiting_idx ON alert_actions (id) WHERE status IN ('pending', 'approved');
