-- Every event the engine consumed, once (the inbox guarantees it), for audit and debugging.
CREATE TABLE IF NOT EXISTS event_log (
    event_id     uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    type         text NOT NULL,
    version      integer NOT NULL,
    producer     text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    trace_id     text,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_log_tenant_received_idx ON event_log (tenant_id, received_at DESC);
