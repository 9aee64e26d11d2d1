-- Memories become searchable (pgvector HNSW + full text), tenant-isolated by row-level security,
-- and can belong to an ingested document.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS documents (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    filename      text NOT NULL,
    kind          text NOT NULL,
    content_type  text,
    size_bytes    integer NOT NULL,
    chunk_count   integer NOT NULL,
    subject       text,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS documents_tenant_idx ON documents (tenant_id, created_at DESC);

ALTER TABLE memories
    ADD COLUMN IF NOT EXISTS subject text,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS embedding vector(384),
    ADD COLUMN IF NOT EXISTS embedding_model text,
    ADD COLUMN IF NOT EXISTS document_id uuid REFERENCES documents (id) ON DELETE CASCADE,
    ADD COLUMN IF NOT EXISTS chunk_index integer,
    ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED;

CREATE INDEX IF NOT EXISTS memories_embedding_hnsw_idx ON memories USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS memories_tsv_idx ON memories USING gin (tsv);
CREATE INDEX IF NOT EXISTS memories_tags_idx ON memories USING gin (tags);
CREATE INDEX IF NOT EXISTS memories_metadata_idx ON memories USING gin (metadata jsonb_path_ops);
CREATE INDEX IF NOT EXISTS memories_subject_idx ON memories (tenant_id, subject) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS memories_expires_idx ON memories (expires_at) WHERE expires_at IS NOT NULL;

-- Idempotency-Key: the first answer to a (tenant, key) is replayed for its retries.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant_id     text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Row-level security: a transaction sees only the tenant it declared with
-- set_config('rae.tenant_id', ...). FORCE makes it hold for the owning role too.
ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON memories;
CREATE POLICY tenant_isolation ON memories
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
-- The expiry sweeper (and only it) deletes across tenants, in transactions that declare it.
DROP POLICY IF EXISTS expiry_sweep ON memories;
CREATE POLICY expiry_sweep ON memories FOR ALL
    USING (current_setting('rae.sweep', true) = 'expired' AND expires_at <= now());
DROP POLICY IF EXISTS tenant_isolation ON documents;
CREATE POLICY tenant_isolation ON documents
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
DROP POLICY IF EXISTS tenant_isolation ON idempotency_keys;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
