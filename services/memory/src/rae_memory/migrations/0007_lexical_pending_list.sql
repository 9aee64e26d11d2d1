-- GIN keeps new entries in an unsorted pending list (4 MB by default) until a vacuum or an
-- insert that overflows it merges them, and every search reads the whole list. Right after
-- 90k inserts, the full-text candidate query at 100k memories spent 12.5 of its 22 ms in a
-- bitmap scan reading 514 pages (the pending list) to find nothing; with continuous writes the
-- list is anywhere between empty and full. 128 kB bounds that scan to 16 pages, and each merge
-- (done by the insert that overflows it) to ~1/32 of the default's.
ALTER INDEX lexical_index_tsv_idx SET (gin_pending_list_limit = 128);
SELECT gin_clean_pending_list('lexical_index_tsv_idx'::regclass);
