-- Retrieval evaluation runs: the overall scores and every case's ranking, tenant-isolated.
CREATE TABLE IF NOT EXISTS evaluations (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    k            integer NOT NULL CHECK (k >= 1),
    weights      jsonb,
    recall_at_k  double precision NOT NULL,
    mrr          double precision NOT NULL,
    ndcg_at_k    double precision NOT NULL,
    case_count   integer NOT NULL,
    cases        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS evaluations_tenant_idx ON evaluations (tenant_id, created_at DESC);

ALTER TABLE evaluations ENABLE ROW LEVEL SECURITY;
ALTER TABLE evaluations FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON evaluations;
CREATE POLICY tenant_isolation ON evaluations
    USING (tenant_id = current_setting('rae.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('rae.tenant_id', true));
