-- Tenants known to the gateway and their API keys. These are platform-admin tables: a key is
-- looked up by its prefix before its tenant is known, so they carry no row-level security.
CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    -- Per-tenant rate-limit overrides, {"<bucket>": <requests per minute>}; absent = default.
    limits      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL UNIQUE,
    -- sha256 of the secret part; the key itself is shown once, at creation.
    secret_hash   text NOT NULL,
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at, id);
