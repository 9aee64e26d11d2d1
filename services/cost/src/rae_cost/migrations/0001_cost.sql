-- One row per recorded model call. A request counts once per tenant, however often its usage
-- event is delivered or re-sent under another event id.
CREATE TABLE IF NOT EXISTS cost_logs (
    id             uuid PRIMARY KEY,
    tenant_id      text NOT NULL,
    request_id     text NOT NULL,
    operation      text NOT NULL,
    model          text NOT NULL,
    provider       text NOT NULL,
    input_tokens   bigint NOT NULL CHECK (input_tokens >= 0),
    output_tokens  bigint NOT NULL CHECK (output_tokens >= 0),
    cost_usd       numeric(24, 10) NOT NULL CHECK (cost_usd >= 0),
    estimated      boolean NOT NULL,
    trace_id       text,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, request_id)
);
CREATE INDEX IF NOT EXISTS cost_logs_page_idx ON cost_logs (tenant_id, occurred_at DESC, id DESC);

-- What budgets and the governance API read: a few rows per tenant and day instead of every call.
CREATE TABLE IF NOT EXISTS usage_daily (
    tenant_id      text NOT NULL,
    day            date NOT NULL,
    model          text NOT NULL,
    provider       text NOT NULL,
    input_tokens   bigint NOT NULL DEFAULT 0,
    output_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd       numeric(30, 10) NOT NULL DEFAULT 0,
    calls          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, model, provider)
);
-- The overview finds the month's tenants without reading every tenant's history.
CREATE INDEX IF NOT EXISTS usage_daily_day_idx ON usage_daily (day, tenant_id);

CREATE TABLE IF NOT EXISTS budgets (
    tenant_id      text PRIMARY KEY,
    daily_tokens   bigint CHECK (daily_tokens >= 0),
    monthly_tokens bigint CHECK (monthly_tokens >= 0),
    daily_usd      numeric(24, 10) CHECK (daily_usd >= 0),
    monthly_usd    numeric(24, 10) CHECK (monthly_usd >= 0),
    warn_ratio     numeric NOT NULL CHECK (warn_ratio > 0 AND warn_ratio <= 1),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A level of a limit is announced once per period: only the transaction that inserts the row
-- writes the event, so concurrent consumers cannot announce it twice.
CREATE TABLE IF NOT EXISTS budget_alerts (
    tenant_id      text NOT NULL,
    period         text NOT NULL CHECK (period IN ('day', 'month')),
    period_start   date NOT NULL,
    metric         text NOT NULL CHECK (metric IN ('tokens', 'usd')),
    level          text NOT NULL CHECK (level IN ('warning', 'exceeded')),
    limit_value    numeric NOT NULL,
    used           numeric NOT NULL,
    event_id       uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, period, period_start, metric, level)
);

-- Row-level security: a transaction sees only the tenant it declared with
-- set_config('rae.tenant_id', ...). FORCE makes it hold for the owning role too.
ALTER TABLE cost_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE cost_logs FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_daily FORCE ROW LEVEL SECURITY;
ALTER TABLE budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE budgets FORCE ROW LEVEL SECURITY;
ALTER TABLE budget_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE budget_alerts FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON cost_logs;
CREATE POLICY tenant_isolation ON cost_logs
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON usage_daily;
CREATE POLICY tenant_isolation ON usage_daily
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON budgets;
CREATE POLICY tenant_isolation ON budgets
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON budget_alerts;
CREATE POLICY tenant_isolation ON budget_alerts
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
-- The admin overview (and only it) reads every tenant's rollup and budget, never a log, and
-- never writes: its transactions declare rae.overview.
DROP POLICY IF EXISTS overview_read ON usage_daily;
CREATE POLICY overview_read ON usage_daily FOR SELECT
    USING (current_setting('rae.overview', true) = 'all-tenants');
DROP POLICY IF EXISTS overview_read ON budgets;
CREATE POLICY overview_read ON budgets FOR SELECT
    USING (current_setting('rae.overview', true) = 'all-tenants');
