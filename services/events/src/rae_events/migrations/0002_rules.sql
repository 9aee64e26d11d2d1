-- Tenants the engine has set up: the first use of a tenant without rules gives it the default
-- rule once; a tenant that deletes it later keeps its choice.
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id   text PRIMARY KEY,
    seeded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rules (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    name          text NOT NULL,
    type          text NOT NULL CHECK (type IN ('memory_count', 'eval_quality', 'budget')),
    params        jsonb NOT NULL,
    action        jsonb NOT NULL,
    cooldown_s    integer NOT NULL CHECK (cooldown_s >= 0),
    max_attempts  integer NOT NULL CHECK (max_attempts >= 1),
    enabled       boolean NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
-- The consumer reads a tenant's enabled rules of one type for every relevant event.
CREATE INDEX IF NOT EXISTS rules_tenant_type_idx ON rules (tenant_id, type) WHERE enabled;
CREATE INDEX IF NOT EXISTS rules_page_idx ON rules (tenant_id, created_at, id);

-- What a rule has seen: the events it matched (memory_count counts them) and its last firing,
-- for the cooldown. The row lock serialises a rule's evaluations.
CREATE TABLE IF NOT EXISTS rule_state (
    rule_id          uuid PRIMARY KEY REFERENCES rules (id) ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    matched          bigint NOT NULL DEFAULT 0,
    last_fired_at    timestamptz,
    matched_at_fire  bigint NOT NULL DEFAULT 0
);

-- One row per firing (the audit), and for a webhook its delivery. The unique trigger key makes a
-- trigger fire once however often its event is handled. No foreign key to rules: the audit
-- outlives a deleted rule.
CREATE TABLE IF NOT EXISTS firings (
    id                  uuid PRIMARY KEY,
    tenant_id           text NOT NULL,
    rule_id             uuid NOT NULL,
    rule_name           text NOT NULL,
    rule_type           text NOT NULL,
    trigger_key         text NOT NULL,
    source_event_id     uuid NOT NULL,
    source_type         text NOT NULL,
    source_occurred_at  timestamptz NOT NULL,
    action_kind         text NOT NULL CHECK (action_kind IN ('event', 'webhook')),
    event_type          text NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'failed', 'delivered', 'dead', 'skipped')),
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    last_error          text,
    latency_ms          double precision,
    next_attempt_at     timestamptz,
    url                 text,
    secret              text,
    payload             text,
    trace_headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    dlq_published_at    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    UNIQUE (tenant_id, trigger_key)
);
CREATE INDEX IF NOT EXISTS firings_page_idx ON firings (tenant_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS firings_rule_idx ON firings (tenant_id, rule_id, created_at DESC);
-- The delivery worker's queue: webhooks still to try, and dead ones not yet on the DLQ topic.
CREATE INDEX IF NOT EXISTS firings_due_idx ON firings (next_attempt_at)
    WHERE status IN ('pending', 'failed') AND action_kind = 'webhook';
CREATE INDEX IF NOT EXISTS firings_dlq_unpublished_idx ON firings (finished_at)
    WHERE status = 'dead' AND dlq_published_at IS NULL;
CREATE INDEX IF NOT EXISTS firings_dead_idx ON firings (tenant_id, finished_at DESC, id DESC)
    WHERE status = 'dead';

-- Records any service's consumer parked on rae.dlq.v1 (webhook deliveries are in firings).
CREATE TABLE IF NOT EXISTS dead_letters (
    id                uuid PRIMARY KEY,
    tenant_id         text NOT NULL,
    dedupe_key        text NOT NULL UNIQUE,
    error             text NOT NULL,
    attempts          integer NOT NULL,
    event_id          uuid,
    event_type        text,
    source_topic      text NOT NULL,
    source_partition  integer,
    source_offset     bigint,
    consumer_group    text,
    record_key        text,
    payload           bytea NOT NULL,
    headers           jsonb NOT NULL,
    dead_at           timestamptz NOT NULL DEFAULT now(),
    replayed_at       timestamptz
);
CREATE INDEX IF NOT EXISTS dead_letters_page_idx ON dead_letters (tenant_id, dead_at DESC, id DESC)
    WHERE replayed_at IS NULL;

-- Row-level security: a transaction sees only the tenant it declared with
-- set_config('rae.tenant_id', ...). FORCE makes it hold for the owning role too.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE rules FORCE ROW LEVEL SECURITY;
ALTER TABLE rule_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE rule_state FORCE ROW LEVEL SECURITY;
ALTER TABLE firings ENABLE ROW LEVEL SECURITY;
ALTER TABLE firings FORCE ROW LEVEL SECURITY;
ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE dead_letters FORCE ROW LEVEL SECURITY;
ALTER TABLE event_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_log FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenants;
CREATE POLICY tenant_isolation ON tenants
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON rules;
CREATE POLICY tenant_isolation ON rules
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON rule_state;
CREATE POLICY tenant_isolation ON rule_state
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON firings;
CREATE POLICY tenant_isolation ON firings
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON dead_letters;
CREATE POLICY tenant_isolation ON dead_letters
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON event_log;
CREATE POLICY tenant_isolation ON event_log
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
-- The delivery worker works the webhook queue of every tenant; its transactions (and only its)
-- declare rae.worker. The metrics sampler reads the DLQ sizes the same way, read-only.
DROP POLICY IF EXISTS delivery_worker ON firings;
CREATE POLICY delivery_worker ON firings
    USING (current_setting('rae.worker', true) = 'events-delivery')
    WITH CHECK (current_setting('rae.worker', true) = 'events-delivery');
DROP POLICY IF EXISTS sampler_read ON dead_letters;
CREATE POLICY sampler_read ON dead_letters FOR SELECT
    USING (current_setting('rae.worker', true) = 'events-delivery');
