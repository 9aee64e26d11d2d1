"""Use cases of the memory service: plain async methods over the ports they need."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from rae_common.clients import ServiceCallFailed
from rae_common.contracts.erasure import text_digest
from rae_common.contracts.memory import (
    BatchResult,
    EraseResult,
    HybridSearchRequest,
    IngestResult,
    MemoryCreate,
    MemoryOut,
    MemoryPatch,
    SearchResult,
)
from rae_common.db import tenant_tx
from rae_common.errors import ProblemError
from rae_common.events import EventData, MemoryCreated, MemoryDeleted, MemoryUpdated, new_envelope
from rae_common.outbox import add_to_outbox
from rae_common.paging import decode_cursor, encode_cursor, invalid_cursor
from rae_memory.adapters.embeddings import Embedded, EmbeddingClient
from rae_memory.adapters.repository import MemoryRepository, NewDocument, NewMemory
from rae_memory.adapters.sql import SCHEMA, Filters
from rae_memory.adapters.vectors import VectorIndex, VectorItem
from rae_memory.domain.model import Layer, content_hash, expiry_for
from rae_memory.domain.ranking import Candidate, Weights, fuse
from rae_memory.erasure import Downstream, subject_digest
from rae_memory.ingest import IngestError, UnsupportedDocumentType, chunk, parse

__all__ = ["IngestRequest", "MemoryService", "Stored", "ingest"]

_log = logging.getLogger("rae.memory")


@dataclass(frozen=True, slots=True)
class Stored:
    row: dict[str, Any]
    created: bool


def to_out(row: dict[str, Any]) -> dict[str, Any]:
    return MemoryOut.model_validate(row).model_dump(mode="json")


class MemoryService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: MemoryRepository,
        vectors: VectorIndex,
        embedder: EmbeddingClient,
        wake_relay: Callable[[], None],
        *,
        recency_half_life: timedelta = timedelta(days=30),
        candidates_per_k: int = 4,
        min_candidates: int = 50,
        embed_chunk: int = 128,
        lexical_pool: int = 500,
        common_lexeme_fraction: float = 0.1,
        downstream: Downstream,
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.vectors = vectors
        self.embedder = embedder
        self.wake_relay = wake_relay
        self.recency_half_life = recency_half_life
        self.candidates_per_k = candidates_per_k
        self.min_candidates = min_candidates
        self.embed_chunk = embed_chunk
        self.lexical_pool = lexical_pool
        self.common_lexeme_fraction = common_lexeme_fraction
        self.downstream = downstream

    # --- writing -------------------------------------------------------------------------

    def new_memory(self, body: MemoryCreate, now: datetime, **extra: Any) -> NewMemory:
        return NewMemory(
            content=body.content,
            layer=body.layer.value,
            tags=sorted(set(body.tags)),
            metadata=body.metadata,
            source=body.source,
            subject=body.subject,
            importance=body.importance,
            content_hash=content_hash(body.content),
            expires_at=expiry_for(body.layer, body.ttl_seconds, now),
            **extra,
        )

    async def store(
        self,
        tenant_id: str,
        items: Sequence[NewMemory],
        *,
        document: NewDocument | None = None,
        idempotency: tuple[str, str] | None = None,
        response: Callable[[list[Stored]], tuple[int, Any]] | None = None,
    ) -> tuple[list[Stored], tuple[int, Any] | None]:
        """Store memories (embedding the new ones) and their events in one transaction.

        Content already stored in the same tenant and layer is returned, not stored again.
        With `idempotency` = (key, request hash), the first answer for the key is replayed.
        """
        keys = [(i.layer, i.content_hash) for i in items]
        async with tenant_tx(self.pool, tenant_id) as conn:
            if idempotency is not None:
                record = await self.repo.idempotency_record(conn, tenant_id, idempotency[0])
                if record is not None:
                    return [], _check_replay(record, idempotency[1])
            known = await self.repo.existing(conn, tenant_id, keys)
        new_items = _unique([i for i in items if (i.layer, i.content_hash) not in known])
        parts = [new_items[n : n + self.embed_chunk] for n in range(0, len(new_items), self.embed_chunk)]
        inserted: list[dict[str, Any]] = []
        new_vectors: list[list[float]] = []
        async with tenant_tx(self.pool, tenant_id) as conn:
            if idempotency is not None:
                claimed = await self.repo.claim_idempotency_key(conn, tenant_id, *idempotency)
                if claimed is not None:
                    return [], _check_replay(claimed, idempotency[1])
            if document is not None:
                await self.repo.insert_document(conn, tenant_id, document)
            # Writes are embedded in parts of `embed_chunk`, part n+1 while Postgres inserts part n.
            # With torch on 2 cores the overlap slowed the model more than it hid the inserts;
            # with ONNX Runtime (workers that do not spin) it pays a little: batches of 256 through
            # the gateway, medians of 3 runs, 111.8 and 99.3 memories/s in two invocations with
            # parts of 128 vs 98.7 in one part and 96.7 with parts of 64 (bench/ingest_throughput.py;
            # run-to-run noise here is ~10 %).
            # Two parts are asked for at once: the ml service takes one at a time, so the next
            # part's request is parsed and looked up in its cache while this one is encoded, and
            # the model goes on to it without waiting for this answer to travel.
            pending = collections.deque(self._embed_task(tenant_id, p) for p in parts[:2])
            try:
                for n, part in enumerate(parts):
                    embedded = await pending.popleft()
                    if n + 2 < len(parts):
                        pending.append(self._embed_task(tenant_id, parts[n + 2]))
                    new_vectors.extend(embedded.vectors)
                    inserted += await self.repo.insert_many(
                        conn,
                        tenant_id,
                        part,
                        embedded.vectors if self.vectors.in_row else None,
                        embedded.model or None,
                    )
            finally:
                for task in pending:  # an insert failed: the next parts' vectors are not needed
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            created_ids = {r["id"] for r in inserted}
            by_key = {**known, **{(r["layer"], r["content_hash"]): r for r in inserted}}
            missing = [k for k in keys if k not in by_key]
            if missing:  # stored concurrently by another request since we looked
                by_key.update(await self.repo.existing(conn, tenant_id, missing))
            await self._announce(
                conn,
                tenant_id,
                "memory.created",
                *(
                    MemoryCreated(
                        memory_id=row["id"],
                        layer=row["layer"],
                        content_hash=row["content_hash"],
                        tags=row["tags"],
                        subject=row["subject"],
                        document_id=row["document_id"],
                    )
                    for row in inserted
                ),
            )
            # Only the first occurrence of a content in the request counts as created.
            stored, seen = [], set()
            for key in keys:
                row = by_key[key]
                stored.append(Stored(row, row["id"] in created_ids and key not in seen))
                seen.add(key)
            answer = response(stored) if response is not None else None
            if idempotency is not None and answer is not None:
                await self.repo.store_idempotent_response(conn, tenant_id, idempotency[0], *answer)
        if not self.vectors.in_row and inserted:
            vector_of = {i.content_hash + i.layer: v for i, v in zip(new_items, new_vectors, strict=True)}
            await self.vectors.upsert(
                tenant_id,
                [
                    VectorItem(
                        r["id"],
                        vector_of[r["content_hash"] + r["layer"]],
                        r["layer"],
                        r["tags"],
                        r["created_at"].timestamp(),
                        r["metadata"],
                    )
                    for r in inserted
                ],
            )
        if inserted:
            self.wake_relay()
        return stored, answer

    async def create(
        self, tenant_id: str, body: MemoryCreate, idempotency_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        idempotency = None
        if idempotency_key is not None:
            request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
            idempotency = (idempotency_key, request_hash)

        def respond(stored: list[Stored]) -> tuple[int, Any]:
            return (201 if stored[0].created else 200), to_out(stored[0].row)

        stored, answer = await self.store(
            tenant_id,
            [self.new_memory(body, datetime.now(UTC))],
            idempotency=idempotency,
            response=respond,
        )
        assert answer is not None
        status, payload = answer
        return status, payload

    async def create_batch(self, tenant_id: str, bodies: Sequence[MemoryCreate]) -> dict[str, Any]:
        now = datetime.now(UTC)
        stored, _ = await self.store(tenant_id, [self.new_memory(b, now) for b in bodies])
        created = sum(1 for s in stored if s.created)
        return BatchResult(
            items=[MemoryOut.model_validate(s.row) for s in stored],
            created=created,
            duplicates=len(stored) - created,
        ).model_dump(mode="json")

    async def patch(self, tenant_id: str, memory_id: uuid.UUID, patch: MemoryPatch) -> dict[str, Any]:
        changes = patch.model_dump(exclude_unset=True)
        async with tenant_tx(self.pool, tenant_id) as conn:
            current = await self.repo.get(conn, tenant_id, memory_id)
        if current is None:
            raise _not_found(memory_id)
        columns: dict[str, Any] = {}
        for name in ("tags", "metadata", "source", "subject", "importance", "expires_at"):
            if name in changes:
                columns[name] = (
                    sorted(set(changes[name])) if name == "tags" and changes[name] else changes[name]
                )
        if changes.get("layer") is not None:
            columns["layer"] = Layer(changes["layer"]).value
        vector: list[float] | None = None
        model: str | None = None
        if changes.get("content") is not None and content_hash(changes["content"]) != current["content_hash"]:
            columns["content"] = changes["content"]
            columns["content_hash"] = content_hash(changes["content"])
            embedded = await self.embedder.embed(tenant_id, [changes["content"]])
            vector, model = embedded.vectors[0], embedded.model
        if {"content", "layer"} & set(columns):
            columns.setdefault("layer", current["layer"])
            columns.setdefault("content_hash", current["content_hash"])
        if not columns:
            return to_out(current)
        async with tenant_tx(self.pool, tenant_id) as conn:
            try:
                row = await self.repo.update(
                    conn, tenant_id, memory_id, columns, vector if self.vectors.in_row else None, model
                )
            except asyncpg.UniqueViolationError as exc:
                raise ProblemError(
                    409,
                    "Another memory of this tenant already has this content in this layer.",
                    slug="duplicate-memory",
                ) from exc
            if row is None:
                raise _not_found(memory_id)
            await self._announce(
                conn,
                tenant_id,
                "memory.updated",
                MemoryUpdated(
                    memory_id=memory_id,
                    layer=row["layer"],
                    content_hash=row["content_hash"],
                    changed=sorted(columns),
                ),
            )
        if not self.vectors.in_row and (vector is not None or columns.keys() & {"layer", "tags", "metadata"}):
            if vector is None:
                vector = (await self.embedder.embed(tenant_id, [row["content"]])).vectors[0]
            await self.vectors.upsert(
                tenant_id,
                [
                    VectorItem(
                        memory_id,
                        vector,
                        row["layer"],
                        row["tags"],
                        row["created_at"].timestamp(),
                        row["metadata"],
                    )
                ],
            )
        self.wake_relay()
        return to_out(row)

    async def delete(self, tenant_id: str, memory_id: uuid.UUID) -> None:
        async with tenant_tx(self.pool, tenant_id) as conn:
            row = await self.repo.delete(conn, tenant_id, memory_id)
            if row is None:
                raise _not_found(memory_id)
            await self._announce_deleted(conn, tenant_id, [row], "deleted")
        await self.vectors.delete(tenant_id, [memory_id])
        self.wake_relay()

    async def erase_subject(self, tenant_id: str, subject: str, actor: str | None) -> dict[str, Any]:
        """Erase the subject's memories and documents and everything derived from them: the
        reflections citing them (in the reflection service and as reflective memories), the
        graph's provenance, the cached embeddings of their texts. One audit row counts it all.

        Reflection and graph are asked first, so what they remove is counted here and not by
        their event handlers; memory's own part is one transaction with its `memory.deleted`
        events and the digests of the texts whose cached embeddings go, so a service that did not
        answer (`pending`) still forgets: reflection and graph from those events, ml's cache from
        `retry_evictions`."""
        erasure_id = uuid.uuid4()
        async with tenant_tx(self.pool, tenant_id) as conn:
            ids = await self.repo.subject_ids(conn, tenant_id, subject)
        pending: list[str] = []
        reflections: set[uuid.UUID] = set()
        graph_edges = graph_entities = 0
        if ids:
            try:
                reflections.update(await self.downstream.reflection.forget(tenant_id, ids))
            except ServiceCallFailed as exc:
                _log.warning("erasure %s: %s; it finishes from the events", erasure_id, exc)
                pending.append("reflection")
            # A reflection's id is its reflective memory's: they go with the rest.
            ids = sorted({*ids, *reflections})
            try:
                forgotten = await self.downstream.graph.forget(tenant_id, ids)
                graph_edges, graph_entities = forgotten.edges_pruned, forgotten.nodes_pruned
            except ServiceCallFailed as exc:
                _log.warning("erasure %s: %s; it finishes from the events", erasure_id, exc)
                pending.append("graph")
        async with tenant_tx(self.pool, tenant_id) as conn:
            rows, documents = await self.repo.erase_subject(conn, tenant_id, subject, ids)
            erased_ids = [r["id"] for r in rows]
            await self.repo.forget_idempotent_responses(conn, tenant_id, erased_ids)
            await self._announce_deleted(conn, tenant_id, rows, "erased")
            reflections.update(r["id"] for r in rows if r["layer"] == Layer.REFLECTIVE.value)
            counts = {
                "memories": len(rows),
                "documents": documents,
                "reflections": len(reflections),
                "graph_edges": graph_edges,
                "graph_entities": graph_entities,
            }
            # The cached embeddings' eviction is recorded before it is tried: if it fails, or this
            # process stops first, `retry_evictions` finishes it from these digests.
            digests = sorted({text_digest(r["content"]) for r in rows})
            await self.repo.record_erasure(
                conn,
                tenant_id,
                erasure_id,
                subject_digest=subject_digest(self.downstream.audit_key, tenant_id, subject),
                actor=actor,
                counts=counts,
                pending=[*pending, "ml"] if digests else pending,
            )
            await self.repo.add_pending_evictions(conn, tenant_id, erasure_id, digests)
        if rows:
            self.wake_relay()
        await self.vectors.delete(tenant_id, erased_ids)
        evicted = await self._evict(tenant_id, erasure_id, digests) if digests else 0
        if evicted is None:
            pending.append("ml")
        async with tenant_tx(self.pool, tenant_id) as conn:
            await self.repo.finish_erasure(conn, tenant_id, erasure_id)
        return EraseResult(
            subject=subject,
            deleted=len(rows),
            **counts,
            cache_entries=evicted or 0,
            pending=pending,
            erasure_id=erasure_id,
        ).model_dump(mode="json")

    async def _evict(self, tenant_id: str, erasure_id: uuid.UUID, digests: list[str]) -> int | None:
        """Evict the erased texts' cached embeddings and settle them; None when ml did not answer
        (the digests stay pending for `retry_evictions`)."""
        try:
            evicted = await self.downstream.ml.evict_embeddings(tenant_id, digests)
        except ServiceCallFailed as exc:
            _log.warning("erasure %s: %s; the eviction is retried", erasure_id, exc)
            return None
        async with tenant_tx(self.pool, tenant_id) as conn:
            await self.repo.settle_evictions(conn, tenant_id, erasure_id, digests, evicted)
        return evicted

    async def retry_evictions(self, limit: int = 1000) -> int:
        """Evict the cached embeddings earlier erasures could not (ml did not answer then); the
        number of digests settled. Stops at the first failure: ml is still away."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self.repo.pending_evictions(conn, limit)
        by_erasure: dict[tuple[str, uuid.UUID], list[str]] = {}
        for row in rows:
            by_erasure.setdefault((row["tenant_id"], row["erasure_id"]), []).append(row["digest"])
        settled = 0
        for (tenant_id, erasure_id), digests in by_erasure.items():
            if await self._evict(tenant_id, erasure_id, digests) is None:
                break
            settled += len(digests)
        return settled

    async def sweep_expired(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self.repo.sweep_expired(conn)
            for row in rows:
                await self._announce_deleted(conn, row["tenant_id"], [row], "expired")
        by_tenant: dict[str, list[uuid.UUID]] = {}
        for row in rows:
            by_tenant.setdefault(row["tenant_id"], []).append(row["id"])
        for tenant_id, ids in by_tenant.items():
            await self.vectors.delete(tenant_id, ids)
        if rows:
            self.wake_relay()
        return len(rows)

    def _embed_task(self, tenant_id: str, part: Sequence[NewMemory]) -> asyncio.Task[Embedded]:
        return asyncio.create_task(self.embedder.embed(tenant_id, [i.content for i in part]))

    # --- reading -------------------------------------------------------------------------

    async def get(self, tenant_id: str, memory_id: uuid.UUID) -> dict[str, Any]:
        async with tenant_tx(self.pool, tenant_id) as conn:
            row = await self.repo.get(conn, tenant_id, memory_id)
        if row is None:
            raise _not_found(memory_id)
        return to_out(row)

    async def page(
        self, tenant_id: str, filters: Filters, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        after = decode_memory_cursor(cursor) if cursor else None
        async with tenant_tx(self.pool, tenant_id) as conn:
            rows = await self.repo.page(conn, tenant_id, filters, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = memory_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return [to_out(r) for r in rows], next_cursor

    async def search(self, tenant_id: str, request: HybridSearchRequest) -> list[dict[str, Any]]:
        filters = Filters(
            layers=[layer.value for layer in request.layers] if request.layers else None,
            tags=request.tags,
            metadata=request.metadata,
            since=request.since,
            until=request.until,
        )
        limit = max(self.min_candidates, self.candidates_per_k * request.k)

        async def lexical() -> list[asyncpg.Record]:
            async with tenant_tx(self.pool, tenant_id) as conn:
                return await self.repo.lexical(
                    conn,
                    tenant_id,
                    request.query,
                    limit,
                    filters,
                    pool_size=self.lexical_pool,
                    common_fraction=self.common_lexeme_fraction,
                )

        # Off the critical path, while the query is embedded: the full-text candidates with their
        # rows (own connection, one statement). Once the vector is there, its transaction answers
        # the nearest rows in one statement (pgvector; with Qdrant, ids, then a fetch of their
        # rows). A connection is held only while Postgres works for it: the full-text part is
        # awaited once the vector connection is back in the pool (holding one while waiting for a
        # second from the same pool deadlocked as soon as as many searches as connections did it,
        # issue #16), and the vector transaction opens after the embedding (opened before, it idled
        # through the ml call, and under load searches queued for connections doing nothing). The
        # cost, three round trips after the embedding, is in docs/BENCHMARKS.md.
        full_text = asyncio.create_task(lexical())
        embedding = asyncio.create_task(self.embedder.embed(tenant_id, [request.query]))
        try:
            query_vector = (await embedding).vectors[0]
            async with tenant_tx(self.pool, tenant_id) as conn:
                await self.vectors.prepare(conn, limit)
                nearest = await self.vectors.search(conn, tenant_id, query_vector, limit, filters)
                vector_ids, rows = nearest.ids, nearest.rows
                unread = [i for i in vector_ids if i not in rows]
                if unread:
                    rows.update(await self.repo.fetch_many(conn, tenant_id, unread, filters))
            best_words = await full_text
            lexical_ids = [r["id"] for r in best_words]
            rows.update((r["id"], dict(r)) for r in best_words)
        finally:
            # Nothing left running (or unretrieved) when the embedding or a search failed.
            for task in (full_text, embedding):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        weights = Weights(**request.weights.model_dump()) if request.weights else Weights()
        ranked = fuse(
            {i: Candidate(i, r["created_at"], r["importance"]) for i, r in rows.items()},
            {i: n for n, i in enumerate(vector_ids, start=1)},
            {i: n for n, i in enumerate(lexical_ids, start=1)},
            weights=weights,
            now=datetime.now(UTC),
            half_life=self.recency_half_life,
            k=request.k,
        )
        return [
            SearchResult.model_validate(
                {
                    **rows[r.id],
                    "score": r.score,
                    "scores": {
                        "vector": r.vector,
                        "lexical": r.lexical,
                        "recency": r.recency,
                        "importance": r.importance,
                    },
                }
            ).model_dump(mode="json")
            for r in ranked
        ]

    # --- helpers -------------------------------------------------------------------------

    async def _announce(
        self, conn: asyncpg.Connection, tenant_id: str, event_type: str, *events: EventData
    ) -> None:
        def key(data: EventData) -> str:
            memory_id = getattr(data, "memory_id", "")
            if event_type == "memory.updated":  # every update is a new event
                return f"{event_type}:{memory_id}:{uuid.uuid4().hex}"
            return f"{event_type}:{memory_id}"

        await add_to_outbox(
            conn,
            SCHEMA,
            *(
                new_envelope(event_type, d, tenant_id=tenant_id, producer="memory", idempotency_key=key(d))
                for d in events
            ),
        )

    async def _announce_deleted(
        self, conn: asyncpg.Connection, tenant_id: str, rows: Sequence[dict[str, Any]], reason: str
    ) -> None:
        await self._announce(
            conn,
            tenant_id,
            "memory.deleted",
            *(
                MemoryDeleted(
                    memory_id=row["id"],
                    layer=row["layer"],
                    reason=reason,
                    # An erased subject is not named again in the events announcing its erasure.
                    subject=None if reason == "erased" else row["subject"],
                )
                for row in rows
            ),
        )


def _unique(items: Sequence[NewMemory]) -> list[NewMemory]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in items:
        key = (item.layer, item.content_hash)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _check_replay(record: dict[str, Any], request_hash: str) -> tuple[int, Any]:
    if record["request_hash"] != request_hash:
        raise ProblemError(
            422,
            "This Idempotency-Key was already used with a different request body.",
            slug="idempotency-key-reused",
        )
    if record["status_code"] is None:
        raise ProblemError(
            409, "A request with this Idempotency-Key is in progress.", slug="idempotency-in-progress"
        )
    return int(record["status_code"]), record["response"]


def _not_found(memory_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, f"Memory {memory_id} was not found.", slug="memory-not-found")


def memory_cursor(created_at: datetime, memory_id: uuid.UUID) -> str:
    return encode_cursor(created_at.isoformat(), str(memory_id))


def decode_memory_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    created_at, memory_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(created_at), uuid.UUID(memory_id)
    except ValueError as exc:
        raise invalid_cursor() from exc


@dataclass(frozen=True, slots=True)
class IngestRequest:
    data: bytes
    filename: str
    content_type: str | None
    layer: Layer
    tags: list[str]
    metadata: dict[str, Any]
    subject: str | None


async def ingest(service: MemoryService, tenant_id: str, request: IngestRequest) -> dict[str, Any]:
    """Parse, chunk along the document's structure, and store every chunk as a memory linked
    to the document — all in one transaction, so a failed ingest stores nothing."""
    try:
        parsed = await asyncio.to_thread(
            parse, request.data, filename=request.filename, content_type=request.content_type
        )
        chunks = chunk(parsed)
    except UnsupportedDocumentType as exc:
        raise ProblemError(415, exc.message, slug=exc.slug) from exc
    except IngestError as exc:
        raise ProblemError(422, exc.message, slug=exc.slug) from exc
    now = datetime.now(UTC)
    document_id = uuid.uuid4()
    expires_at = expiry_for(request.layer, None, now)
    items = [
        NewMemory(
            content=piece.text,
            layer=request.layer.value,
            tags=sorted(set(request.tags)),
            metadata={
                **request.metadata,
                "document": request.filename,
                "section": list(piece.heading_path),
                **({"page": piece.page} if piece.page is not None else {}),
            },
            source=f"document:{request.filename}",
            subject=request.subject,
            importance=0.5,
            content_hash=content_hash(piece.text),
            expires_at=expires_at,
            document_id=document_id,
            chunk_index=piece.index,
        )
        for piece in chunks
    ]
    document = NewDocument(
        id=document_id,
        filename=request.filename,
        kind=str(parsed.kind),
        content_type=request.content_type,
        size_bytes=len(request.data),
        chunk_count=len(chunks),
        subject=request.subject,
        metadata=request.metadata,
    )
    stored, _ = await service.store(tenant_id, items, document=document)
    return IngestResult(
        document_id=document_id,
        filename=request.filename,
        kind=str(parsed.kind),
        chunk_count=len(chunks),
        memory_ids=[s.row["id"] for s in stored],
    ).model_dump(mode="json")
