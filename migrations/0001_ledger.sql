-- The ledger: one row per stream the gateway ran, written by the queue consumer.
-- record_id is made by the server per stream, so a redelivered message is a no-op
-- (INSERT ... ON CONFLICT (record_id) DO NOTHING). Money in integer micro-dollars.
CREATE TABLE ledger (
  record_id      TEXT    PRIMARY KEY,
  stream_id      TEXT    NOT NULL,
  user           TEXT    NOT NULL,
  model          TEXT    NOT NULL,
  provider       TEXT    NOT NULL,
  input_tokens   INTEGER NOT NULL CHECK (input_tokens >= 0),
  output_tokens  INTEGER NOT NULL CHECK (output_tokens >= 0),
  cost_micro_usd INTEGER NOT NULL CHECK (cost_micro_usd >= 0),
  finish_reason  TEXT    NOT NULL,
  usage_source   TEXT    NOT NULL,
  -- Unix ms, and its UTC day (YYYY-MM-DD) for the per-day sums.
  started_at     INTEGER NOT NULL,
  day            TEXT    NOT NULL,
  ttft_ms        INTEGER,
  duration_ms    INTEGER NOT NULL CHECK (duration_ms >= 0)
) STRICT;

-- Spend for a range of days, grouped by day, model or user: a range scan of this index
-- answers it without touching the table (it holds every summed column).
CREATE INDEX ledger_by_day ON ledger (day, model, user, input_tokens, output_tokens, cost_micro_usd);

-- One user's records, newest first, paginated by (started_at, record_id).
CREATE INDEX ledger_by_user ON ledger (user, started_at DESC, record_id DESC);
