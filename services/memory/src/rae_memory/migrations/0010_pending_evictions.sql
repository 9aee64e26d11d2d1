-- Cached embeddings an erasure could not evict because the ml service did not answer: the erased
-- texts' digests (SHA-256 of the UTF-8 text, how ml keys its cache), kept only until a retry
-- evicts them (the expiry sweep's loop retries). Never the texts themselves.
CREATE TABLE IF NOT EXISTS pending_evictions (
    erasure_id  uuid NOT NULL REFERENCES erasures (id) ON DELETE CASCADE,
    tenant_id   text NOT NULL,
    digest      text NOT NULL,
    PRIMARY KEY (erasure_id, digest)
);

ALTER TABLE pending_evictions ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_evictions FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON pending_evictions;
CREATE POLICY tenant_isolation ON pending_evictions
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
-- The retry reads every tenant's rows (then works tenant by tenant), as the expiry sweep does.
DROP POLICY IF EXISTS eviction_retry ON pending_evictions;
CREATE POLICY eviction_retry ON pending_evictions FOR SELECT
    USING (current_setting('rae.sweep', true) = 'evictions');
