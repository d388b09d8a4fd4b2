-- 0003: order intents (written BEFORE an order is sent, reconciled by client order id on start)
-- and paper-account snapshots. No credentials are ever stored here.
-- Forward-only and idempotent (IF NOT EXISTS).

CREATE TABLE IF NOT EXISTS order_intents (
    client_order_id   text PRIMARY KEY,
    request_id        text,                              -- caller's idempotency key, optional
    mode              text NOT NULL CHECK (mode IN ('paper', 'live')),
    exchange          text NOT NULL,
    symbol            text NOT NULL,
    side              text NOT NULL CHECK (side IN ('buy', 'sell')),
    type              text NOT NULL CHECK (type IN ('market', 'limit')),
    amount            double precision NOT NULL CHECK (amount > 0),
    price             double precision,
    -- pending: written, not known to be sent; unknown: sent, no reply (both are "open");
    -- placed: the exchange has it; rejected: refused by the exchange; not_placed: reconciled absent
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'unknown', 'placed', 'rejected', 'not_placed')),
    exchange_order_id text,
    order_status      text,                              -- open | closed | canceled, as last seen
    filled            double precision,
    average           double precision,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS order_intents_open_idx
    ON order_intents (created_at) WHERE status IN ('pending', 'unknown');

-- At most one live (not definitively failed) intent per idempotency key.
CREATE UNIQUE INDEX IF NOT EXISTS order_intents_request_idx
    ON order_intents (request_id)
    WHERE request_id IS NOT NULL AND status IN ('pending', 'unknown', 'placed');

CREATE TABLE IF NOT EXISTS paper_accounts (
    account    text PRIMARY KEY,                         -- e.g. paper:binance
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
