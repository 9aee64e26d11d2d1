-- Full-text candidates come from a projection without row-level security.
--
-- Under row-level security Postgres may evaluate a non-leakproof operator such as tsvector @@
-- tsquery only after the policy, so it can never use the GIN index: every full-text query became
-- a scan of the tenant's rows. This projection holds (memory id, tenant id, lexemes) only, is always
-- queried with the tenant in the adapter, and yields candidate ids that are then read through the
-- row-level-secured memories table, so a wrong id can never surface another tenant's content.
CREATE TABLE IF NOT EXISTS lexical_index (
    memory_id   uuid PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    tenant_id   text NOT NULL,
    created_at  timestamptz NOT NULL,
    tsv         tsvector NOT NULL
);
CREATE INDEX IF NOT EXISTS lexical_index_tsv_idx ON lexical_index USING gin (tsv);

CREATE OR REPLACE FUNCTION lexical_index_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory.lexical_index (memory_id, tenant_id, created_at, tsv)
    VALUES (NEW.id, NEW.tenant_id, NEW.created_at, NEW.tsv)
    ON CONFLICT (memory_id) DO UPDATE SET tsv = EXCLUDED.tsv;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS memories_lexical_index ON memories;
CREATE TRIGGER memories_lexical_index AFTER INSERT OR UPDATE OF content ON memories
    FOR EACH ROW EXECUTE FUNCTION lexical_index_sync();

-- Backfill: the owner reads every tenant's rows only while the policies are not forced on it.
ALTER TABLE memories NO FORCE ROW LEVEL SECURITY;
INSERT INTO lexical_index (memory_id, tenant_id, created_at, tsv)
    SELECT id, tenant_id, created_at, tsv FROM memories ON CONFLICT DO NOTHING;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;

-- The GIN index on memories.tsv could not serve queries under row-level security.
DROP INDEX IF EXISTS memories_tsv_idx;
