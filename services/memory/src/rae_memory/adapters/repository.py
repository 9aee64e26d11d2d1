"""Postgres repository of memories and documents.

Every statement runs in a `tenant_tx` (row-level security) and also names the tenant in its
WHERE clause, so isolation never depends on one mechanism alone.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from rae_memory.adapters.sql import COLUMNS, LIVE, SCHEMA, Filters, vector_param, vectors_param
from rae_memory.domain.lexical import informative_terms

__all__ = ["LexemeFrequencies", "MemoryRepository", "NewDocument", "NewMemory"]


@dataclass(frozen=True, slots=True)
class NewMemory:
    content: str
    layer: str
    tags: list[str]
    metadata: dict[str, Any]
    source: str | None
    subject: str | None
    importance: float
    content_hash: str
    expires_at: datetime | None
    document_id: uuid.UUID | None = None
    chunk_index: int | None = None


@dataclass(frozen=True, slots=True)
class NewDocument:
    id: uuid.UUID
    filename: str
    kind: str
    content_type: str | None
    size_bytes: int
    chunk_count: int
    subject: str | None
    metadata: dict[str, Any]


def _tsquery(lexemes: Sequence[str], operator: str) -> str:
    return f" {operator} ".join("'" + lexeme.replace("'", "''") + "'" for lexeme in lexemes)


class LexemeFrequencies:
    """Share of the lexical index's rows holding each of its most common lexemes: the planner's
    statistics (`pg_stats.most_common_elems`, kept by ANALYZE and autovacuum), re-read after
    `ttl_s`. Lexemes not listed are rarer than every listed one."""

    def __init__(self, ttl_s: float = 300.0) -> None:
        self.ttl_s = ttl_s
        self._frequencies: dict[str, float] = {}
        self._read_at = -math.inf

    async def get(self, conn: asyncpg.Connection) -> dict[str, float]:
        if time.monotonic() - self._read_at >= self.ttl_s:
            row = await conn.fetchrow(
                """SELECT most_common_elems::text::text[] AS lexemes, most_common_elem_freqs AS freqs
                   FROM pg_stats WHERE schemaname = $1 AND tablename = 'lexical_index' AND attname = 'tsv'""",
                SCHEMA,
            )
            # The frequency array carries three summary numbers after one per lexeme: zip drops them.
            found = row is not None and row["lexemes"] is not None
            self._frequencies = dict(zip(row["lexemes"], row["freqs"], strict=False)) if found else {}
            self._read_at = time.monotonic()
        return self._frequencies


# The memories an erasure of subject $2 reaches in tenant $1: its own and every chunk of its
# documents, whatever the chunk's own subject.
_OF_SUBJECT = f"""(subject = $2 OR document_id IN (
    SELECT id FROM {SCHEMA}.documents WHERE tenant_id = $1 AND subject = $2))"""


class MemoryRepository:
    def __init__(self, lexeme_frequencies: LexemeFrequencies | None = None) -> None:
        self.lexeme_frequencies = lexeme_frequencies or LexemeFrequencies()

    async def existing(
        self, conn: asyncpg.Connection, tenant_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Live memories with these (layer, content_hash) pairs."""
        if not keys:
            return {}
        rows = await conn.fetch(
            f"""SELECT {COLUMNS} FROM {SCHEMA}.memories
                WHERE tenant_id = $1 AND (layer, content_hash) IN (
                    SELECT * FROM unnest($2::text[], $3::text[]))""",
            tenant_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(r["layer"], r["content_hash"]): dict(r) for r in rows}

    async def insert_many(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        items: Sequence[NewMemory],
        vectors: Sequence[Sequence[float]] | None,
        model: str | None,
    ) -> list[dict[str, Any]]:
        """Insert in one statement; rows that collide with a stored (layer, hash) are skipped."""
        if not items:
            return []
        ids = [uuid.uuid4() for _ in items]
        rows = await conn.fetch(
            f"""INSERT INTO {SCHEMA}.memories (id, tenant_id, content, layer, tags, metadata, source,
                    subject, importance, content_hash, expires_at, document_id, chunk_index,
                    embedding, embedding_model)
                SELECT t.id, $1, t.content, t.layer,
                       ARRAY(SELECT jsonb_array_elements_text(t.tags::jsonb)), t.metadata::jsonb, t.source,
                       t.subject, t.importance, t.content_hash, t.expires_at, t.document_id,
                       t.chunk_index, t.embedding, $15
                FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                            $8::text[], $9::real[], $10::text[], $11::timestamptz[], $12::uuid[],
                            $13::integer[], $14::vector[])
                     AS t(id, content, layer, tags, metadata, source, subject, importance,
                          content_hash, expires_at, document_id, chunk_index, embedding)
                ON CONFLICT (tenant_id, layer, content_hash) DO NOTHING
                RETURNING {COLUMNS}""",
            tenant_id,
            ids,
            [i.content for i in items],
            [i.layer for i in items],
            [json.dumps(i.tags) for i in items],
            [json.dumps(i.metadata) for i in items],
            [i.source for i in items],
            [i.subject for i in items],
            [i.importance for i in items],
            [i.content_hash for i in items],
            [i.expires_at for i in items],
            [i.document_id for i in items],
            [i.chunk_index for i in items],
            vectors_param(vectors) if vectors else None,
            model,
        )
        order = {memory_id: n for n, memory_id in enumerate(ids)}
        return sorted((dict(r) for r in rows), key=lambda r: order[r["id"]])

    async def get(
        self, conn: asyncpg.Connection, tenant_id: str, memory_id: uuid.UUID
    ) -> dict[str, Any] | None:
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM {SCHEMA}.memories WHERE tenant_id = $1 AND id = $2 AND {LIVE}",
            tenant_id,
            memory_id,
        )
        return dict(row) if row is not None else None

    async def fetch_many(
        self, conn: asyncpg.Connection, tenant_id: str, ids: Sequence[uuid.UUID], filters: Filters
    ) -> dict[uuid.UUID, dict[str, Any]]:
        params: list[Any] = [tenant_id, list(ids)]
        where = filters.sql(params)
        rows = await conn.fetch(
            f"""SELECT {COLUMNS} FROM {SCHEMA}.memories
                WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND {where}""",
            *params,
        )
        return {r["id"]: dict(r) for r in rows}

    async def page(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        filters: Filters,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        params: list[Any] = [tenant_id]
        where = filters.sql(params)
        if after is not None:
            params.extend(after)
            where += f" AND (created_at, id) < (${len(params) - 1}, ${len(params)})"
        params.append(limit)
        rows = await conn.fetch(
            f"""SELECT {COLUMNS} FROM {SCHEMA}.memories WHERE tenant_id = $1 AND {where}
                ORDER BY created_at DESC, id DESC LIMIT ${len(params)}""",
            *params,
        )
        return [dict(r) for r in rows]

    async def update(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        memory_id: uuid.UUID,
        changes: dict[str, Any],
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> dict[str, Any] | None:
        assignments = []
        params: list[Any] = [tenant_id, memory_id]
        for column, value in changes.items():
            params.append(value)
            assignments.append(f"{column} = ${len(params)}")
        if vector is not None:
            params.extend([vector_param(vector), model])
            n = len(params)
            assignments.append(f"embedding = ${n - 1}::vector, embedding_model = ${n}")
        assignments.append("updated_at = now()")
        row = await conn.fetchrow(
            f"""UPDATE {SCHEMA}.memories SET {", ".join(assignments)}
                WHERE tenant_id = $1 AND id = $2 AND {LIVE} RETURNING {COLUMNS}""",
            *params,
        )
        return dict(row) if row is not None else None

    async def delete(
        self, conn: asyncpg.Connection, tenant_id: str, memory_id: uuid.UUID
    ) -> dict[str, Any] | None:
        row = await conn.fetchrow(
            f"""DELETE FROM {SCHEMA}.memories WHERE tenant_id = $1 AND id = $2 AND {LIVE}
                RETURNING {COLUMNS}""",
            tenant_id,
            memory_id,
        )
        return dict(row) if row is not None else None

    async def subject_ids(self, conn: asyncpg.Connection, tenant_id: str, subject: str) -> list[uuid.UUID]:
        """The memories an erasure of `subject` removes: the subject's own, every chunk of its
        documents (whatever the chunk's own subject), and the reflective memories whose provenance
        (`metadata.reflection.source_ids`, written by the reflection service) names one of them."""
        rows = await conn.fetch(
            f"""WITH erased AS (
                    SELECT id FROM {SCHEMA}.memories WHERE tenant_id = $1 AND {_OF_SUBJECT})
                SELECT id FROM erased
                UNION
                SELECT m.id FROM {SCHEMA}.memories m
                WHERE m.tenant_id = $1 AND m.layer = 'reflective'
                  AND m.metadata -> 'reflection' -> 'source_ids' ?| ARRAY(SELECT id::text FROM erased)""",
            tenant_id,
            subject,
        )
        return [r["id"] for r in rows]

    async def erase_subject(
        self, conn: asyncpg.Connection, tenant_id: str, subject: str, ids: Sequence[uuid.UUID]
    ) -> tuple[list[dict[str, Any]], int]:
        """Delete the memories of `ids`, and those `subject_ids` finds now (stored since `ids`
        was read), and the subject's documents; returns (the memories' rows, the documents)."""
        rows = [
            dict(r)
            for r in await conn.fetch(
                f"""DELETE FROM {SCHEMA}.memories
                    WHERE tenant_id = $1 AND (id = ANY($3::uuid[]) OR {_OF_SUBJECT})
                    RETURNING {COLUMNS}""",
                tenant_id,
                subject,
                list(ids),
            )
        ]
        rows += await self.delete_reflections_of(conn, tenant_id, [r["id"] for r in rows])
        documents = await conn.fetch(
            f"DELETE FROM {SCHEMA}.documents WHERE tenant_id = $1 AND subject = $2 RETURNING id",
            tenant_id,
            subject,
        )
        return rows, len(documents)

    async def delete_reflections_of(
        self, conn: asyncpg.Connection, tenant_id: str, source_ids: Sequence[uuid.UUID]
    ) -> list[dict[str, Any]]:
        """Delete the reflective memories whose provenance names one of `source_ids`."""
        if not source_ids:
            return []
        rows = await conn.fetch(
            f"""DELETE FROM {SCHEMA}.memories WHERE tenant_id = $1 AND layer = 'reflective'
                  AND metadata -> 'reflection' -> 'source_ids' ?| $2::text[]
                RETURNING {COLUMNS}""",
            tenant_id,
            [str(i) for i in source_ids],
        )
        return [dict(r) for r in rows]

    async def forget_idempotent_responses(
        self, conn: asyncpg.Connection, tenant_id: str, ids: Sequence[uuid.UUID]
    ) -> None:
        """Drop the stored answers (which hold a memory's content) of requests that created these
        memories: a retry of such a request after the erasure is a new write."""
        await conn.execute(
            f"""DELETE FROM {SCHEMA}.idempotency_keys
                WHERE tenant_id = $1 AND response ->> 'id' = ANY($2::text[])""",
            tenant_id,
            [str(i) for i in ids],
        )

    async def record_erasure(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        erasure_id: uuid.UUID,
        *,
        subject_digest: str | None,
        actor: str | None,
        counts: dict[str, int],
        pending: Sequence[str],
    ) -> None:
        """The erasure's audit row: counts by kind, never content."""
        await conn.execute(
            f"""INSERT INTO {SCHEMA}.erasures (id, tenant_id, subject_digest, actor, memories, documents,
                    reflections, graph_entities, graph_edges, cache_entries, pending)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            erasure_id,
            tenant_id,
            subject_digest,
            actor,
            counts.get("memories", 0),
            counts.get("documents", 0),
            counts.get("reflections", 0),
            counts.get("graph_entities", 0),
            counts.get("graph_edges", 0),
            counts.get("cache_entries", 0),
            list(pending),
        )

    async def finish_erasure(self, conn: asyncpg.Connection, tenant_id: str, erasure_id: uuid.UUID) -> None:
        await conn.execute(
            f"UPDATE {SCHEMA}.erasures SET completed_at = now() WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            erasure_id,
        )

    async def add_pending_evictions(
        self, conn: asyncpg.Connection, tenant_id: str, erasure_id: uuid.UUID, digests: Sequence[str]
    ) -> None:
        await conn.execute(
            f"""INSERT INTO {SCHEMA}.pending_evictions (erasure_id, tenant_id, digest)
                SELECT $1, $2, d FROM unnest($3::text[]) AS d ON CONFLICT DO NOTHING""",
            erasure_id,
            tenant_id,
            list(digests),
        )

    async def settle_evictions(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        erasure_id: uuid.UUID,
        digests: Sequence[str],
        evicted: int,
    ) -> None:
        """The ml service evicted `digests` (`evicted` entries): forget them, count them, and take
        ml off the erasure's pending list once nothing of it is left."""
        await conn.execute(
            f"""DELETE FROM {SCHEMA}.pending_evictions
                WHERE tenant_id = $1 AND erasure_id = $2 AND digest = ANY($3::text[])""",
            tenant_id,
            erasure_id,
            list(digests),
        )
        await conn.execute(
            f"""UPDATE {SCHEMA}.erasures SET cache_entries = cache_entries + $3,
                    pending = CASE WHEN EXISTS (
                        SELECT 1 FROM {SCHEMA}.pending_evictions WHERE tenant_id = $1 AND erasure_id = $2)
                        THEN pending ELSE array_remove(pending, 'ml') END
                WHERE tenant_id = $1 AND id = $2""",
            tenant_id,
            erasure_id,
            evicted,
        )

    async def pending_evictions(self, conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
        """Every tenant's evictions still to do (the caller's transaction declares the retry)."""
        await conn.execute("SELECT set_config('rae.sweep', 'evictions', true)")
        rows = await conn.fetch(
            f"SELECT erasure_id, tenant_id, digest FROM {SCHEMA}.pending_evictions LIMIT $1", limit
        )
        return [dict(r) for r in rows]

    async def lexical(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        query: str,
        limit: int,
        filters: Filters,
        *,
        pool_size: int = 500,
        common_fraction: float = 0.1,
    ) -> list[asyncpg.Record]:
        """Full-text candidates, best first, with bounded work however common the words are: their
        rows (`COLUMNS` of `memory.memories`), read through the row-level-secured table and the
        request's filters in the same statement.

        Candidates are the tenant's `pool_size` most recent memories with every informative query
        word (`informative_terms`: words in more than `common_fraction` of the rows do not pick
        candidates), then as many with any of them; all of them ranked by cover density
        (`ts_rank_cd`) over every query word, those with every word first. Narrowing filters
        apply before the pool is cut; expiry (and every filter again) when the rows are read.
        """
        # The tsqueries' selectivity decides between the GIN index (rare words) and walking the
        # tenant's newest rows (common words). A cached generic plan (asyncpg prepares statements;
        # Postgres turns to one after five runs) makes one choice for every query: 65 vs 26 ms
        # median at 100k memories.
        lexemes: list[str] = await conn.fetchval(
            "SELECT tsvector_to_array(to_tsvector('english', $1)) "
            "FROM set_config('plan_cache_mode', 'force_custom_plan', true)",
            query,
        )
        if not lexemes:
            return []
        frequencies = await self.lexeme_frequencies.get(conn)
        picking = informative_terms(lexemes, frequencies, common_fraction)
        params: list[Any] = [tenant_id, _tsquery(picking, "|"), _tsquery(picking, "&")]
        params.append(_tsquery(lexemes, "|"))
        source = f"{SCHEMA}.lexical_index x"
        if filters.narrows:
            source += f" JOIN {SCHEMA}.memories m ON m.id = x.memory_id AND m.tenant_id = $1 AND "
            source += filters.sql(params, alias="m")
        params += [pool_size, limit]
        pool_param, limit_param = f"${len(params) - 1}", f"${len(params)}"
        where = filters.sql(params, alias="m")
        # `best` names its id `memory_id`, so the memories' columns are read without an alias.
        return list(
            await conn.fetch(
                f"""WITH pool AS (
                    (SELECT x.memory_id AS id, x.tsv, 0 AS tier FROM {source}
                     WHERE x.tenant_id = $1 AND x.tsv @@ $3::tsquery
                     ORDER BY x.created_at DESC LIMIT {pool_param})
                    UNION ALL
                    (SELECT x.memory_id, x.tsv, 1 FROM {source}
                     WHERE x.tenant_id = $1 AND x.tsv @@ $2::tsquery
                     ORDER BY x.created_at DESC LIMIT {pool_param})),
                ranked AS (
                    SELECT DISTINCT ON (p.id) p.id, p.tier, ts_rank_cd(p.tsv, $4::tsquery) AS rank
                    FROM pool p ORDER BY p.id, p.tier),
                best AS (
                    SELECT r.id AS memory_id, r.tier, r.rank FROM ranked r
                    ORDER BY r.tier, r.rank DESC, r.id LIMIT {limit_param})
                SELECT {COLUMNS} FROM best b
                JOIN {SCHEMA}.memories m ON m.id = b.memory_id AND m.tenant_id = $1 AND {where}
                ORDER BY b.tier, b.rank DESC, b.memory_id""",
                *params,
            )
        )

    async def insert_document(self, conn: asyncpg.Connection, tenant_id: str, doc: NewDocument) -> None:
        await conn.execute(
            f"""INSERT INTO {SCHEMA}.documents (id, tenant_id, filename, kind, content_type, size_bytes,
                    chunk_count, subject, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            doc.id,
            tenant_id,
            doc.filename,
            doc.kind,
            doc.content_type,
            doc.size_bytes,
            doc.chunk_count,
            doc.subject,
            doc.metadata,
        )

    async def claim_idempotency_key(
        self, conn: asyncpg.Connection, tenant_id: str, key: str, request_hash: str
    ) -> dict[str, Any] | None:
        """Claim `key` in this transaction; returns the earlier record when it exists.

        A concurrent request with the same key waits on the primary key until this
        transaction ends, then sees the stored answer.
        """
        inserted = await conn.fetchval(
            f"""INSERT INTO {SCHEMA}.idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, $3)
                ON CONFLICT DO NOTHING RETURNING true""",
            tenant_id,
            key,
            request_hash,
        )
        if inserted:
            return None
        record = await self.idempotency_record(conn, tenant_id, key)
        assert record is not None
        return record

    async def idempotency_record(
        self, conn: asyncpg.Connection, tenant_id: str, key: str
    ) -> dict[str, Any] | None:
        row = await conn.fetchrow(
            f"""SELECT request_hash, status_code, response FROM {SCHEMA}.idempotency_keys
                WHERE tenant_id = $1 AND key = $2""",
            tenant_id,
            key,
        )
        return dict(row) if row is not None else None

    async def store_idempotent_response(
        self, conn: asyncpg.Connection, tenant_id: str, key: str, status_code: int, response: Any
    ) -> None:
        await conn.execute(
            f"""UPDATE {SCHEMA}.idempotency_keys SET status_code = $3, response = $4
                WHERE tenant_id = $1 AND key = $2""",
            tenant_id,
            key,
            status_code,
            response,
        )

    async def sweep_expired(self, conn: asyncpg.Connection, limit: int = 1000) -> list[dict[str, Any]]:
        """Delete expired memories of every tenant, in the caller's transaction (the sweep
        policy lets a transaction that declares `rae.sweep` see expired rows, and only them)."""
        await conn.execute("SELECT set_config('rae.sweep', 'expired', true)")
        rows = await conn.fetch(
            f"""DELETE FROM {SCHEMA}.memories WHERE id IN (
                    SELECT id FROM {SCHEMA}.memories WHERE expires_at <= now() LIMIT $1
                    FOR UPDATE SKIP LOCKED)
                RETURNING {COLUMNS}""",
            limit,
        )
        return [dict(r) for r in rows]
