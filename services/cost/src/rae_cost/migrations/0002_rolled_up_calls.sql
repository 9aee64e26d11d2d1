-- A row may account for several calls: ml rolls the usage of embedding calls up per tenant,
-- model and window into one llm.usage event (its `calls`).
ALTER TABLE cost_logs ADD COLUMN IF NOT EXISTS calls bigint NOT NULL DEFAULT 1 CHECK (calls >= 1);
