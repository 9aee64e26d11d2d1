CREATE TABLE IF NOT EXISTS memories (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    content       text NOT NULL,
    layer         text NOT NULL CHECK (layer IN ('working', 'episodic', 'semantic', 'reflective')),
    tags          text[] NOT NULL DEFAULT '{}',
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    source        text,
    importance    real NOT NULL DEFAULT 0.5 CHECK (importance >= 0 AND importance <= 1),
    content_hash  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz
);
CREATE INDEX IF NOT EXISTS memories_tenant_created_idx ON memories (tenant_id, created_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS memories_dedup_idx ON memories (tenant_id, layer, content_hash);
