-- The any-word tier takes a tenant's most recent matches: walk them newest first.
CREATE INDEX IF NOT EXISTS lexical_index_tenant_recent_idx ON lexical_index (tenant_id, created_at DESC);
