-- One row per erasure of a subject: who asked, in which tenant, when, and how much went — never
-- the subject or any erased text. The subject is kept only as a keyed digest (HMAC-SHA256 under
-- ERASURE_AUDIT_KEY, of the tenant and the subject): whoever holds the key can answer "was this
-- subject erased, and when?", while the table alone names no one (a plain hash of a name is
-- found again by hashing a list of names). NULL when no key is configured.
CREATE TABLE IF NOT EXISTS erasures (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    subject_digest  text,
    actor           text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    -- When the request had its answer from every service it asked (or gave up on some: `pending`).
    completed_at    timestamptz,
    memories        integer NOT NULL DEFAULT 0,
    documents       integer NOT NULL DEFAULT 0,
    reflections     integer NOT NULL DEFAULT 0,
    graph_entities  integer NOT NULL DEFAULT 0,
    graph_edges     integer NOT NULL DEFAULT 0,
    cache_entries   integer NOT NULL DEFAULT 0,
    -- Services that did not answer: they finish from the erasure's memory.deleted events.
    pending         text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS erasures_tenant_idx ON erasures (tenant_id, requested_at DESC);

ALTER TABLE erasures ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasures FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON erasures;
CREATE POLICY tenant_isolation ON erasures
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
