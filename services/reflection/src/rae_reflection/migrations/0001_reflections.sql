-- One row per reflection: the `reflective` memory it was stored as (its id is the memory's id)
-- and its provenance. A request's group is recorded once, however often the request is delivered.
CREATE TABLE IF NOT EXISTS reflections (
    id                uuid PRIMARY KEY,
    tenant_id         text NOT NULL,
    content           text NOT NULL,
    source_ids        uuid[] NOT NULL,
    model             text NOT NULL,
    prompt_version    text NOT NULL,
    request_event_id  uuid NOT NULL,
    group_key         text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, request_event_id, group_key)
);
CREATE INDEX IF NOT EXISTS reflections_page_idx ON reflections (tenant_id, created_at DESC, id DESC);

-- Where the tenant's last handled request stopped reading memories: the next one starts there.
CREATE TABLE IF NOT EXISTS watermarks (
    tenant_id   text PRIMARY KEY,
    until       timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Row-level security: a transaction sees only the tenant it declared with
-- set_config('rae.tenant_id', ...). FORCE makes it hold for the owning role too.
ALTER TABLE reflections ENABLE ROW LEVEL SECURITY;
ALTER TABLE reflections FORCE ROW LEVEL SECURITY;
ALTER TABLE watermarks ENABLE ROW LEVEL SECURITY;
ALTER TABLE watermarks FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON reflections;
CREATE POLICY tenant_isolation ON reflections
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON watermarks;
CREATE POLICY tenant_isolation ON watermarks
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
