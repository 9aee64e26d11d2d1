"""Use cases of the graph service: merge a memory's facts in, forget a memory, query, GraphRAG."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from rae_common.contracts.graph import MAX_DEPTH
from rae_common.contracts.ml import Entity, ExtractResponse
from rae_common.errors import ProblemError
from rae_common.events import GraphUpdated, new_envelope
from rae_common.outbox import add_to_outbox
from rae_common.paging import decode_cursor, encode_cursor
from rae_graph.adapters.clients import MemoryClient, MlClient
from rae_graph.adapters.store import GraphStore, NewEdge, NewNode, NodeExists
from rae_graph.domain.entities import (
    JUDGE_SCHEMA,
    Candidate,
    Contender,
    compatible,
    entity_keys,
    judge_messages,
    judged_match,
    normalise,
    pick_similar,
)
from rae_graph.domain.model import Counts, EdgeRow, NodeRow, timestamp
from rae_graph.domain.ranking import fuse
from rae_graph.domain.traversal import Expansion, expand

__all__ = ["GraphService", "Tuning", "UnknownMemory"]

SCHEMA = "graph"
PRODUCER = "graph"
_LINKED_ENTITIES = 10
_MERGE_ATTEMPTS = 3


class UnknownMemory(Exception):
    """The memory named as provenance does not exist for the tenant."""


@dataclass(frozen=True, slots=True)
class Tuning:
    similarity_threshold: float
    similarity_margin: float
    resolution_candidates: int
    functional_relations: frozenset[str]
    max_nodes: int
    graph_weight: float
    hybrid_weight: float
    # Generation model that settles ambiguous resolutions; None: they become new nodes.
    judge_model: str | None = None


class GraphService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: GraphStore,
        ml: MlClient,
        memories: MemoryClient,
        tuning: Tuning,
        wake_relay: Callable[[], None],
    ) -> None:
        self.pool = pool
        self.store = store
        self.ml = ml
        self.memories = memories
        self.tuning = tuning
        self.wake_relay = wake_relay

    # --- writing -------------------------------------------------------------------------------

    async def on_memory_created(self, conn: asyncpg.Connection, tenant_id: str, memory_id: uuid.UUID) -> None:
        """Extract the memory's entities and relations and merge them in; announce the counts in
        the caller's (inbox) transaction. A memory already gone is nothing to do."""
        memory = await self.memories.get(tenant_id, memory_id)
        if memory is None:
            return
        extraction = await self.ml.extract(tenant_id, memory.content)
        counts = await self.merge(
            tenant_id, extraction, str(memory_id), timestamp(memory.created_at), context=memory.content
        )
        await self._announce(conn, tenant_id, memory_id, counts)

    async def on_memory_deleted(self, conn: asyncpg.Connection, tenant_id: str, memory_id: uuid.UUID) -> None:
        edges, nodes = await self.store.forget_memory(tenant_id, str(memory_id))
        await self._announce(conn, tenant_id, memory_id, Counts(edges_pruned=edges, nodes_pruned=nodes))

    async def forget(self, tenant_id: str, memory_ids: Sequence[uuid.UUID]) -> Counts:
        """Drop the memories from every provenance list now, pruning what is left with none (an
        erasure asks this before it deletes them; their memory.deleted events then find nothing
        left to do). Announces what each memory's forgetting pruned."""
        pruned: list[tuple[uuid.UUID, Counts]] = []
        total = Counts()
        for memory_id in memory_ids:
            edges, nodes = await self.store.forget_memory(tenant_id, str(memory_id))
            if edges or nodes:
                pruned.append((memory_id, Counts(edges_pruned=edges, nodes_pruned=nodes)))
                total.edges_pruned += edges
                total.nodes_pruned += nodes
        if pruned:
            async with self.pool.acquire() as conn, conn.transaction():
                for memory_id, counts in pruned:
                    await self._announce(conn, tenant_id, memory_id, counts)
            self.wake_relay()
        return total

    async def extract(
        self, tenant_id: str, text: str, *, store: bool, memory_id: uuid.UUID | None
    ) -> dict[str, Any]:
        # Provenance decides what a memory's deletion prunes: only the tenant's own, existing
        # memory may be named (asked before ml spends anything on the text).
        if store and memory_id is not None and await self.memories.get(tenant_id, memory_id) is None:
            raise UnknownMemory(memory_id)
        extraction = await self.ml.extract(tenant_id, text)
        stored = None
        if store:
            counts = await self.merge(
                tenant_id, extraction, str(memory_id) if memory_id else None, timestamp(), context=text
            )
            async with self.pool.acquire() as conn, conn.transaction():
                await self._announce(conn, tenant_id, memory_id, counts)
            self.wake_relay()
            stored = {
                "nodes_created": counts.nodes_created,
                "nodes_merged": counts.nodes_merged,
                "edges_created": counts.edges_created,
                "edges_closed": counts.edges_closed,
            }
        return {
            "entities": [e.model_dump() for e in extraction.entities],
            "relations": [r.model_dump() for r in extraction.relations],
            "stored": stored,
            "notice": extraction.notice,
        }

    async def _announce(
        self, conn: asyncpg.Connection, tenant_id: str, memory_id: uuid.UUID | None, counts: Counts
    ) -> None:
        data = GraphUpdated(
            memory_id=memory_id,
            nodes_created=counts.nodes_created,
            nodes_merged=counts.nodes_merged,
            edges_created=counts.edges_created,
            edges_closed=counts.edges_closed,
            edges_pruned=counts.edges_pruned,
            nodes_pruned=counts.nodes_pruned,
        )
        await add_to_outbox(
            conn, SCHEMA, new_envelope("graph.updated", data, tenant_id=tenant_id, producer=PRODUCER)
        )

    async def merge(
        self,
        tenant_id: str,
        extraction: ExtractResponse,
        memory_id: str | None,
        valid_from: str,
        *,
        context: str = "",
    ) -> Counts:
        """Resolve the extraction's entities onto nodes and write its relations, bi-temporally.

        Every step is idempotent for a memory seen before (provenance lists are unions, an edge
        already open is supported rather than repeated), so a redelivered event changes nothing.
        That makes a merge safe to run again when a concurrent one (the consumer beside an extract
        call, two replicas) created one of its new entities first: the next run finds the node."""
        attempts = _MERGE_ATTEMPTS
        while True:
            try:
                return await self._merge_once(tenant_id, extraction, memory_id, valid_from, context)
            except NodeExists:
                attempts -= 1
                if not attempts:
                    raise

    async def _merge_once(
        self,
        tenant_id: str,
        extraction: ExtractResponse,
        memory_id: str | None,
        valid_from: str,
        context: str,
    ) -> Counts:
        now = timestamp()
        counts = Counts()
        memory_ids = [memory_id] if memory_id else []
        resolved: dict[str, str] = {}
        unresolved: list[tuple[Entity, list[str]]] = []
        for entity in extraction.entities:
            keys = entity_keys(entity.name, entity.aliases)
            if not keys or keys[0] in resolved:
                continue
            found = [
                n for n in await self.store.find_by_keys(tenant_id, keys) if compatible(n.type, entity.type)
            ]
            if not found:
                unresolved.append((entity, keys))
                continue
            # The node named exactly like the mention stays; otherwise the oldest.
            found.sort(key=lambda n: normalise(n.name) != keys[0])
            keep = found[0]
            for duplicate in found[1:]:
                await self.store.merge_nodes(tenant_id, keep.id, duplicate.id, now)
                counts.nodes_merged += 1
            await self.store.add_mention(
                tenant_id, keep.id, [entity.name, *entity.aliases], keys, memory_ids, now
            )
            counts.nodes_merged += 1
            resolved[keys[0]] = keep.id
        if unresolved:
            await self._resolve_by_similarity(
                tenant_id, unresolved, resolved, memory_ids, counts, now, context
            )

        for relation in extraction.relations:
            source = resolved.get(normalise(relation.source))
            target = resolved.get(normalise(relation.target))
            if source is None or target is None or source == target:
                continue
            await self._relate(
                tenant_id,
                source,
                relation.relation,
                target,
                relation.confidence,
                memory_ids,
                valid_from,
                now,
                counts,
            )
        return counts

    async def _resolve_by_similarity(
        self,
        tenant_id: str,
        unresolved: Sequence[tuple[Entity, list[str]]],
        resolved: dict[str, str],
        memory_ids: list[str],
        counts: Counts,
        now: str,
        context: str,
    ) -> None:
        # One embedding call for every name the cheap keys could not place.
        vectors = await self.ml.embed(tenant_id, [entity.name for entity, _ in unresolved])
        candidates = await self.store.candidates(tenant_id, self.tuning.resolution_candidates)
        for (entity, keys), vector in zip(unresolved, vectors, strict=True):
            similar = pick_similar(
                vector,
                entity.type,
                candidates,
                threshold=self.tuning.similarity_threshold,
                margin=self.tuning.similarity_margin,
            )
            match = similar.match
            if similar.ambiguous and self.tuning.judge_model:
                match = await self._judge(tenant_id, entity, context, similar.contenders)
            if match is not None:
                await self.store.add_mention(
                    tenant_id, match, [entity.name, *entity.aliases], keys, memory_ids, now
                )
                counts.nodes_merged += 1
                resolved[keys[0]] = match
                continue
            node = NewNode(
                str(uuid.uuid4()), entity.name, entity.type, keys, entity.aliases, vector, memory_ids
            )
            await self.store.create_node(tenant_id, node, now)
            counts.nodes_created += 1
            candidates.append(Candidate(node.id, node.type, vector))
            resolved[keys[0]] = node.id

    async def _judge(
        self, tenant_id: str, entity: Entity, context: str, contenders: Sequence[str]
    ) -> str | None:
        """Ask the configured LLM which of the too-similar nodes the mention is (None: a new node)."""
        assert self.tuning.judge_model
        by_id = {n.id: n for n in await self.store.nodes(tenant_id, contenders)}
        known = [i for i in contenders if i in by_id]
        messages = judge_messages(
            entity.name,
            entity.type,
            context,
            [Contender(by_id[i].name, by_id[i].type, by_id[i].aliases) for i in known],
        )
        output = await self.ml.judge(tenant_id, self.tuning.judge_model, messages, JUDGE_SCHEMA)
        return judged_match(output, known)

    async def _relate(
        self,
        tenant_id: str,
        source: str,
        relation: str,
        target: str,
        confidence: float,
        memory_ids: list[str],
        valid_from: str,
        now: str,
        counts: Counts,
    ) -> None:
        open_edges = await self.store.open_edges(tenant_id, source, relation)
        same = next((e for e in open_edges if e.target_id == target), None)
        others = [e for e in open_edges if e.target_id != target]
        functional = relation in self.tuning.functional_relations
        edge_id = same.id if same is not None else str(uuid.uuid4())
        # The facts this one supersedes close before it is written: a reader that sees the new
        # edge never sees the old one still current beside it.
        if functional:
            stale = [e.id for e in others if e.valid_from <= valid_from]
            if stale:
                await self.store.close_edges(tenant_id, stale, valid_from, edge_id, now)
                counts.edges_closed += len(stale)
        if same is not None:
            await self.store.support_edge(tenant_id, same.id, memory_ids, confidence)
        else:
            # An older fact arriving after a newer contradicting one is history from the start.
            newer = [e.valid_from for e in others if e.valid_from > valid_from] if functional else []
            edge = NewEdge(
                edge_id,
                source,
                relation,
                target,
                confidence,
                valid_from,
                min(newer) if newer else None,
                memory_ids,
            )
            await self.store.create_edge(tenant_id, edge, now)
            counts.edges_created += 1

    # --- reading -------------------------------------------------------------------------------

    async def nodes_page(
        self, tenant_id: str, *, type: str | None, name: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        after = decode_cursor(cursor, 1)[0] if cursor else ""
        rows = await self.store.nodes_page(
            tenant_id, type=type, name=normalise(name) if name else None, after=after, limit=limit + 1
        )
        return _page([node_out(r) for r in rows], limit)

    async def edges_page(
        self,
        tenant_id: str,
        *,
        relation: str | None,
        node_id: uuid.UUID | None,
        memory_id: uuid.UUID | None,
        current_only: bool,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        after = decode_cursor(cursor, 1)[0] if cursor else ""
        rows = await self.store.edges_page(
            tenant_id,
            relation=relation,
            node_id=str(node_id) if node_id else None,
            memory_id=str(memory_id) if memory_id else None,
            current_only=current_only,
            after=after,
            limit=limit + 1,
        )
        return _page([edge_out(r) for r in rows], limit)

    async def node(self, tenant_id: str, node_id: str) -> NodeRow:
        found = await self.store.nodes(tenant_id, [node_id])
        if not found:
            raise ProblemError(404, f"No entity {node_id}.", slug="entity-not-found")
        return found[0]

    async def entity(self, tenant_id: str, ref: str) -> NodeRow:
        """An entity by id, or by name or alias (the most mentioned when several types share it)."""
        try:
            return await self.node(tenant_id, str(uuid.UUID(ref)))
        except ValueError:
            pass
        found = await self.store.find_by_keys(tenant_id, [normalise(ref)])
        if not found:
            raise ProblemError(404, f"No entity named {ref!r}.", slug="entity-not-found")
        return max(found, key=lambda n: len(n.memory_ids))

    async def neighbourhood(
        self, tenant_id: str, seeds: Sequence[str], depth: int, *, current_only: bool
    ) -> dict[str, Any]:
        found = await self._expand(tenant_id, seeds, depth, current_only=current_only)
        nodes = await self.store.nodes(tenant_id, list(found.paths))
        return {
            "nodes": [node_out(n) for n in nodes],
            "edges": [edge_out(edge) for edge, _ in found.edges.values()],
            "truncated": found.truncated,
        }

    async def path(self, tenant_id: str, start: NodeRow, end: NodeRow) -> dict[str, Any]:
        found = await self._expand(tenant_id, [start.id], MAX_DEPTH, current_only=True)
        if end.id not in found.paths:
            return {"found": False, "nodes": [], "edges": []}
        edges = found.paths[end.id]
        order = [start.id]
        for edge in edges:
            order.append(edge.target_id if edge.source_id == order[-1] else edge.source_id)
        by_id = {n.id: n for n in await self.store.nodes(tenant_id, order)}
        return {
            "found": True,
            "nodes": [node_out(by_id[i]) for i in order],
            "edges": [edge_out(e) for e in edges],
        }

    async def stats(self, tenant_id: str) -> dict[str, Any]:
        return await self.store.stats(tenant_id)

    async def _expand(
        self, tenant_id: str, seeds: Sequence[str], depth: int, *, current_only: bool
    ) -> Expansion:
        cap = self.tuning.max_nodes

        async def fetch(frontier: list[str]) -> list[EdgeRow]:
            return await self.store.edges_around(
                tenant_id, frontier, current_only=current_only, limit=cap * 4
            )

        return await expand(seeds, min(depth, MAX_DEPTH), fetch, cap)

    # --- GraphRAG ------------------------------------------------------------------------------

    async def search(self, tenant_id: str, query: str, k: int, depth: int) -> dict[str, Any]:
        """Memories supporting the neighbourhood of the query's entities, fused with hybrid search;
        each with the path of edges from a linked entity that justified it."""
        linked, hybrid = await asyncio.gather(
            self._link(tenant_id, query), self.memories.hybrid_search(tenant_id, query, max(k, 10))
        )
        found = await self._expand(tenant_id, [n.id for n in linked], depth, current_only=True)
        paths: dict[str, list[EdgeRow]] = {}
        ranked = sorted(
            found.edges.values(), key=lambda item: (len(item[1]), -item[0].confidence, item[0].id)
        )
        for edge, path in ranked:
            for memory_id in edge.memory_ids:
                paths.setdefault(memory_id, path)
        fused = fuse(
            list(paths),
            [str(r.id) for r in hybrid],
            graph_weight=self.tuning.graph_weight,
            hybrid_weight=self.tuning.hybrid_weight,
            k=k,
        )
        contents = {str(r.id): r.content for r in hybrid}
        missing = [f.memory_id for f in fused if f.memory_id not in contents]
        for memory_id, memory in zip(
            missing, await asyncio.gather(*(self.memories.get(tenant_id, m) for m in missing)), strict=True
        ):
            if memory is not None:
                contents[memory_id] = memory.content
        results = [
            {
                "id": f.memory_id,
                "content": contents[f.memory_id],
                "score": f.score,
                "graph_rank": f.graph_rank,
                "hybrid_rank": f.hybrid_rank,
                "path": [
                    {"source": e.source, "relation": e.relation, "target": e.target, "edge_id": e.id}
                    for e in paths.get(f.memory_id, [])
                ],
            }
            for f in fused
            if f.memory_id in contents
        ]
        return {"results": results, "entities": [node_out(n) for n in linked]}

    async def _link(self, tenant_id: str, query: str) -> list[NodeRow]:
        """Graph entities the query names: what the extractor finds in it, and any node whose name
        or alias occurs in it as whole words."""
        extraction = await self.ml.extract(tenant_id, query)
        keys = [k for e in extraction.entities for k in entity_keys(e.name, e.aliases)]
        by_keys = await self.store.find_by_keys(tenant_id, keys) if keys else []
        by_words = await self.store.link(tenant_id, f" {normalise(query)} ", _LINKED_ENTITIES)
        linked = {n.id: n for n in [*by_keys, *by_words]}
        return list(linked.values())[:_LINKED_ENTITIES]


def node_out(node: NodeRow) -> dict[str, Any]:
    return asdict(node)


def edge_out(edge: EdgeRow) -> dict[str, Any]:
    return asdict(edge)


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(items[-1]["id"]) if more else None}
