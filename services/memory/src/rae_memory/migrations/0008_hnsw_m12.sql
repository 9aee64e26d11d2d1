-- A smaller graph (m 12, ef_construction 24; was 16 / 32) costs each stored memory less, and the
-- search makes up the recall with a longer candidate list (HNSW_EF_SEARCH 200; was 128). On 50,000
-- sentences embedded by the service's own model, 200 questions, medians of 3 builds: recall@10
-- against an exact scan 0.801 before, 0.823 after; a 256-row insert 313 -> 216 ms; the vector
-- query p50 2.3 -> 2.5 ms (bench/hnsw_build_cost.py, docs/BENCHMARKS.md).
-- A rebuild: writes to the table wait while it runs (50,000 memories: 9 s on the 2-core VM).
DROP INDEX IF EXISTS memories_embedding_hnsw_idx;
CREATE INDEX memories_embedding_hnsw_idx ON memories
    USING hnsw (embedding vector_cosine_ops) WITH (m = 12, ef_construction = 24);
