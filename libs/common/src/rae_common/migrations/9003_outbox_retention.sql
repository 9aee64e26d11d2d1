-- Published events stay for the retention window (OUTBOX_RETENTION_HOURS), so that what a broker
-- lost can be published again: this index finds the events published in a time range.
CREATE INDEX IF NOT EXISTS outbox_sent_at_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;
