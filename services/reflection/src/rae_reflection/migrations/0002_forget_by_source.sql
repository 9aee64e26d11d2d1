-- An erased or deleted memory takes the reflections citing it with it: find them by source.
CREATE INDEX IF NOT EXISTS reflections_sources_idx ON reflections USING gin (source_ids);
