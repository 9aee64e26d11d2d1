"""The knowledge graph over Bolt (ArcadeDB locally, Neo4j 5 in production).

Portable Cypher only (no APOC, no server-specific procedures). Every query is parametrised and
every MATCH names the tenant, here and nowhere else, so no caller can forget it. Entities are
`:Entity` nodes; relations are `:RELATES_TO` edges whose `relation` property holds the name
(WORKS_AT, ...): relationship types cannot be parameters, and one type keeps every query fixed text.
Times are fixed-width RFC 3339 strings, so comparisons work the same on both servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import neo4j

from rae_graph.domain.entities import Candidate, entity_keys
from rae_graph.domain.model import EdgeRow, NodeRow

__all__ = ["GraphStore", "NewEdge", "NewNode", "NodeExists"]

SCHEMA = (
    "CREATE CONSTRAINT rae_entity_id IF NOT EXISTS FOR (n:Entity) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT rae_entity_key IF NOT EXISTS FOR (n:Entity) "
    "REQUIRE (n.tenant_id, n.type, n.key) IS UNIQUE",
    "CREATE INDEX rae_entity_tenant IF NOT EXISTS FOR (n:Entity) ON (n.tenant_id)",
    "CREATE INDEX rae_relates_id IF NOT EXISTS FOR ()-[r:RELATES_TO]-() ON (r.id)",
    "CREATE INDEX rae_relates_tenant IF NOT EXISTS FOR ()-[r:RELATES_TO]-() ON (r.tenant_id)",
)

_NODE = "n.id AS id, n.name AS name, n.type AS type, n.aliases AS aliases, n.memory_ids AS memory_ids, \
n.created_at AS created_at, n.updated_at AS updated_at"
_EDGE = "r.id AS id, a.id AS source_id, a.name AS source, r.relation AS relation, b.id AS target_id, \
b.name AS target, r.confidence AS confidence, r.valid_from AS valid_from, r.valid_to AS valid_to, \
r.created_at AS created_at, r.expired_at AS expired_at, r.memory_ids AS memory_ids"


class NodeExists(Exception):
    """Another writer created an entity with the same (tenant, type, key) first."""


class NewNode:
    __slots__ = ("aliases", "embedding", "id", "key", "keys", "memory_ids", "name", "type")

    def __init__(
        self,
        id: str,
        name: str,
        type: str,
        keys: Sequence[str],
        aliases: Sequence[str],
        embedding: Sequence[float],
        memory_ids: Sequence[str],
    ) -> None:
        self.id, self.name, self.type = id, name, type
        self.key, self.keys = keys[0], list(keys)
        self.aliases, self.embedding, self.memory_ids = list(aliases), list(embedding), list(memory_ids)


class NewEdge:
    __slots__ = (
        "confidence",
        "id",
        "memory_ids",
        "relation",
        "source_id",
        "target_id",
        "valid_from",
        "valid_to",
    )

    def __init__(
        self,
        id: str,
        source_id: str,
        relation: str,
        target_id: str,
        confidence: float,
        valid_from: str,
        valid_to: str | None,
        memory_ids: Sequence[str],
    ) -> None:
        self.id, self.source_id, self.relation, self.target_id = id, source_id, relation, target_id
        self.confidence, self.valid_from, self.valid_to = confidence, valid_from, valid_to
        self.memory_ids = list(memory_ids)


def _node(record: Any) -> NodeRow:
    return NodeRow(
        id=record["id"],
        name=record["name"],
        type=record["type"],
        aliases=list(record["aliases"] or []),
        memory_ids=list(record["memory_ids"] or []),
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def _edge(record: Any) -> EdgeRow:
    return EdgeRow(
        id=record["id"],
        source_id=record["source_id"],
        source=record["source"],
        relation=record["relation"],
        target_id=record["target_id"],
        target=record["target"],
        confidence=float(record["confidence"]),
        valid_from=record["valid_from"],
        valid_to=record["valid_to"],
        created_at=record["created_at"],
        expired_at=record["expired_at"],
        memory_ids=list(record["memory_ids"] or []),
    )


class GraphStore:
    def __init__(self, driver: neo4j.AsyncDriver, database: str) -> None:
        self.driver = driver
        self.database = database

    async def _run(self, query: str, **params: Any) -> list[Any]:
        result = await self.driver.execute_query(query, params, database_=self.database)
        return list(result.records)

    async def ensure_schema(self) -> None:
        for statement in SCHEMA:
            await self._run(statement)

    # --- entities ------------------------------------------------------------------------------

    async def find_by_keys(self, tenant_id: str, keys: Sequence[str]) -> list[NodeRow]:
        """Nodes whose name or an alias normalises to one of `keys`, oldest first."""
        records = await self._run(
            f"""MATCH (n:Entity {{tenant_id: $tenant}})
                WHERE n.key IN $keys OR any(k IN n.keys WHERE k IN $keys)
                RETURN {_NODE} ORDER BY n.created_at, n.id""",
            tenant=tenant_id,
            keys=list(keys),
        )
        return [_node(r) for r in records]

    async def candidates(self, tenant_id: str, limit: int) -> list[Candidate]:
        """Recently touched nodes with their name embeddings, for similarity resolution."""
        records = await self._run(
            """MATCH (n:Entity {tenant_id: $tenant}) WHERE n.embedding IS NOT NULL
               RETURN n.id AS id, n.type AS type, n.embedding AS embedding
               ORDER BY n.updated_at DESC LIMIT $limit""",
            tenant=tenant_id,
            limit=limit,
        )
        return [Candidate(r["id"], r["type"], list(r["embedding"])) for r in records]

    async def create_node(self, tenant_id: str, node: NewNode, now: str) -> None:
        """Raises `NodeExists` when a concurrent writer created the same entity first."""
        try:
            await self._run(
                """CREATE (n:Entity {id: $id, tenant_id: $tenant, name: $name, type: $type, key: $key,
                          keys: $keys, aliases: $aliases, embedding: $embedding, memory_ids: $memory_ids,
                          created_at: $now, updated_at: $now})""",
                id=node.id,
                tenant=tenant_id,
                name=node.name,
                type=node.type,
                key=node.key,
                keys=node.keys,
                aliases=node.aliases,
                embedding=node.embedding,
                memory_ids=node.memory_ids,
                now=now,
            )
        except neo4j.exceptions.ConstraintError as exc:
            raise NodeExists(node.key) from exc

    async def add_mention(
        self,
        tenant_id: str,
        node_id: str,
        aliases: Sequence[str],
        keys: Sequence[str],
        memory_ids: Sequence[str],
        now: str,
    ) -> None:
        """Union the aliases, keys and memories of a mention into the node it resolved to."""
        await self._run(
            """MATCH (n:Entity {tenant_id: $tenant, id: $id})
               SET n.aliases = n.aliases + [a IN $aliases WHERE NOT a IN n.aliases AND a <> n.name],
                   n.keys = n.keys + [k IN $keys WHERE NOT k IN n.keys],
                   n.memory_ids = n.memory_ids + [m IN $memory_ids WHERE NOT m IN n.memory_ids],
                   n.updated_at = $now""",
            tenant=tenant_id,
            id=node_id,
            aliases=list(aliases),
            keys=list(keys),
            memory_ids=list(memory_ids),
            now=now,
        )

    async def merge_nodes(self, tenant_id: str, keep_id: str, duplicate_id: str, now: str) -> None:
        """Fold `duplicate_id` into `keep_id`: its edges, names and memories move, the node goes.

        Edges are re-created (Cypher cannot re-point one); an edge between the two becomes nothing."""
        tenant = tenant_id
        duplicate = await self.nodes(tenant, [duplicate_id])
        if not duplicate:
            return
        dup = duplicate[0]
        for direction in ("(d)-[r:RELATES_TO]->(x)", "(x)-[r:RELATES_TO]->(d)"):
            create = "(k)-[c:RELATES_TO]->(x)" if direction.startswith("(d)") else "(x)-[c:RELATES_TO]->(k)"
            await self._run(
                f"""MATCH (k:Entity {{tenant_id: $tenant, id: $keep}}),
                          (d:Entity {{tenant_id: $tenant, id: $dup}})
                    MATCH {direction} WHERE r.tenant_id = $tenant AND x.id <> $keep AND x.id <> $dup
                    CREATE {create}
                    SET c.id = r.id, c.tenant_id = r.tenant_id, c.relation = r.relation,
                        c.confidence = r.confidence, c.valid_from = r.valid_from, c.valid_to = r.valid_to,
                        c.created_at = r.created_at, c.expired_at = r.expired_at,
                        c.memory_ids = r.memory_ids, c.superseded_by = r.superseded_by
                    DELETE r""",
                tenant=tenant,
                keep=keep_id,
                dup=duplicate_id,
            )
        await self._run(
            "MATCH (d:Entity {tenant_id: $tenant, id: $dup}) DETACH DELETE d", tenant=tenant, dup=duplicate_id
        )
        keys = entity_keys(dup.name, dup.aliases)
        await self.add_mention(tenant, keep_id, [dup.name, *dup.aliases], keys, dup.memory_ids, now)

    async def nodes(self, tenant_id: str, ids: Sequence[str]) -> list[NodeRow]:
        records = await self._run(
            f"MATCH (n:Entity {{tenant_id: $tenant}}) WHERE n.id IN $ids RETURN {_NODE}",
            tenant=tenant_id,
            ids=list(ids),
        )
        return [_node(r) for r in records]

    async def nodes_page(
        self, tenant_id: str, *, type: str | None, name: str | None, after: str, limit: int
    ) -> list[NodeRow]:
        records = await self._run(
            f"""MATCH (n:Entity {{tenant_id: $tenant}})
                WHERE n.id > $after AND ($type IS NULL OR n.type = $type)
                  AND ($name IS NULL OR any(k IN n.keys WHERE k CONTAINS $name))
                RETURN {_NODE} ORDER BY n.id LIMIT $limit""",
            tenant=tenant_id,
            type=type,
            name=name,
            after=after,
            limit=limit,
        )
        return [_node(r) for r in records]

    async def link(self, tenant_id: str, text: str, limit: int) -> list[NodeRow]:
        """Nodes whose name or an alias occurs as whole words in `text` (normalised, space-padded)."""
        records = await self._run(
            f"""MATCH (n:Entity {{tenant_id: $tenant}})
                WHERE any(k IN n.keys WHERE $text CONTAINS (' ' + k + ' '))
                RETURN {_NODE} ORDER BY size(n.memory_ids) DESC, n.id LIMIT $limit""",
            tenant=tenant_id,
            text=text,
            limit=limit,
        )
        return [_node(r) for r in records]

    # --- relations -----------------------------------------------------------------------------

    async def open_edges(self, tenant_id: str, source_id: str, relation: str) -> list[EdgeRow]:
        records = await self._run(
            f"""MATCH (a:Entity {{tenant_id: $tenant, id: $source}})-[r:RELATES_TO]->
                      (b:Entity {{tenant_id: $tenant}})
                WHERE r.tenant_id = $tenant AND r.relation = $relation AND r.valid_to IS NULL
                RETURN {_EDGE}""",
            tenant=tenant_id,
            source=source_id,
            relation=relation,
        )
        return [_edge(r) for r in records]

    async def create_edge(self, tenant_id: str, edge: NewEdge, now: str) -> None:
        await self._run(
            """MATCH (a:Entity {tenant_id: $tenant, id: $source}),
                     (b:Entity {tenant_id: $tenant, id: $target})
               CREATE (a)-[r:RELATES_TO {id: $id, tenant_id: $tenant, relation: $relation,
                       confidence: $confidence, valid_from: $valid_from, created_at: $now,
                       memory_ids: $memory_ids}]->(b)
               SET r.valid_to = $valid_to,
                   r.expired_at = CASE WHEN $valid_to IS NULL THEN null ELSE $now END""",
            tenant=tenant_id,
            source=edge.source_id,
            target=edge.target_id,
            id=edge.id,
            relation=edge.relation,
            confidence=edge.confidence,
            valid_from=edge.valid_from,
            valid_to=edge.valid_to,
            memory_ids=edge.memory_ids,
            now=now,
        )

    async def support_edge(
        self, tenant_id: str, edge_id: str, memory_ids: Sequence[str], confidence: float
    ) -> None:
        """One more memory states an edge: add it to the provenance, keep the highest confidence."""
        await self._run(
            """MATCH (:Entity {tenant_id: $tenant})-[r:RELATES_TO {id: $id}]->(:Entity {tenant_id: $tenant})
               SET r.memory_ids = r.memory_ids + [m IN $memory_ids WHERE NOT m IN r.memory_ids],
                   r.confidence = CASE WHEN r.confidence < $confidence
                                       THEN $confidence ELSE r.confidence END""",
            tenant=tenant_id,
            id=edge_id,
            memory_ids=list(memory_ids),
            confidence=confidence,
        )

    async def close_edges(
        self, tenant_id: str, edge_ids: Sequence[str], valid_to: str, superseded_by: str, now: str
    ) -> None:
        await self._run(
            """MATCH (:Entity {tenant_id: $tenant})-[r:RELATES_TO]->(:Entity {tenant_id: $tenant})
               WHERE r.id IN $ids AND r.valid_to IS NULL
               SET r.valid_to = $valid_to, r.expired_at = $now, r.superseded_by = $by""",
            tenant=tenant_id,
            ids=list(edge_ids),
            valid_to=valid_to,
            by=superseded_by,
            now=now,
        )

    async def edges_around(
        self, tenant_id: str, node_ids: Sequence[str], *, current_only: bool, limit: int
    ) -> list[EdgeRow]:
        """Edges touching any of `node_ids`, either direction, strongest first."""
        records = await self._run(
            f"""MATCH (n:Entity {{tenant_id: $tenant}})-[r:RELATES_TO]-(m:Entity {{tenant_id: $tenant}})
                WHERE n.id IN $ids AND r.tenant_id = $tenant AND (NOT $current OR r.valid_to IS NULL)
                WITH r, startNode(r) AS a, endNode(r) AS b
                RETURN DISTINCT {_EDGE} ORDER BY confidence DESC, id LIMIT $limit""",
            tenant=tenant_id,
            ids=list(node_ids),
            current=current_only,
            limit=limit,
        )
        return [_edge(r) for r in records]

    async def edges_page(
        self,
        tenant_id: str,
        *,
        relation: str | None,
        node_id: str | None,
        memory_id: str | None,
        current_only: bool,
        after: str,
        limit: int,
    ) -> list[EdgeRow]:
        records = await self._run(
            f"""MATCH (a:Entity {{tenant_id: $tenant}})-[r:RELATES_TO]->(b:Entity {{tenant_id: $tenant}})
                WHERE r.tenant_id = $tenant AND r.id > $after
                  AND ($relation IS NULL OR r.relation = $relation)
                  AND ($node IS NULL OR a.id = $node OR b.id = $node)
                  AND ($memory IS NULL OR $memory IN r.memory_ids)
                  AND (NOT $current OR r.valid_to IS NULL)
                RETURN {_EDGE} ORDER BY r.id LIMIT $limit""",
            tenant=tenant_id,
            relation=relation,
            node=node_id,
            memory=memory_id,
            current=current_only,
            after=after,
            limit=limit,
        )
        return [_edge(r) for r in records]

    # --- provenance ----------------------------------------------------------------------------

    async def forget_memory(self, tenant_id: str, memory_id: str) -> tuple[int, int]:
        """Remove a memory from every provenance list; prune edges left with none (re-opening the
        edges they had closed), then nodes left with neither edges nor memories.
        Returns (edges pruned, nodes pruned)."""
        tenant = tenant_id
        touched = await self._run(
            """MATCH (a:Entity {tenant_id: $tenant})-[r:RELATES_TO]->(b:Entity {tenant_id: $tenant})
               WHERE r.tenant_id = $tenant AND $memory IN r.memory_ids
               SET r.memory_ids = [m IN r.memory_ids WHERE m <> $memory]
               RETURN r.id AS id, size(r.memory_ids) AS left, r.valid_to IS NULL AS open,
                      a.id AS source_id, b.id AS target_id""",
            tenant=tenant,
            memory=memory_id,
        )
        orphans = [r["id"] for r in touched if r["left"] == 0]
        reopen = [r["id"] for r in touched if r["left"] == 0 and r["open"]]
        ends = {r[k] for r in touched for k in ("source_id", "target_id")}
        if reopen:
            await self._run(
                """MATCH (:Entity {tenant_id: $tenant})-[r:RELATES_TO]->(:Entity {tenant_id: $tenant})
                   WHERE r.superseded_by IN $ids AND NOT r.id IN $orphans
                   SET r.valid_to = null, r.expired_at = null, r.superseded_by = null""",
                tenant=tenant,
                ids=reopen,
                orphans=orphans,
            )
        if orphans:
            await self._run(
                """MATCH (:Entity {tenant_id: $tenant})-[r:RELATES_TO]->(:Entity {tenant_id: $tenant})
                   WHERE r.id IN $ids DELETE r""",
                tenant=tenant,
                ids=orphans,
            )
        mentioned = await self._run(
            """MATCH (n:Entity {tenant_id: $tenant}) WHERE $memory IN n.memory_ids
               SET n.memory_ids = [m IN n.memory_ids WHERE m <> $memory] RETURN n.id AS id""",
            tenant=tenant,
            memory=memory_id,
        )
        ends |= {r["id"] for r in mentioned}
        pruned = await self._run(
            """MATCH (n:Entity {tenant_id: $tenant})
               WHERE n.id IN $ids AND size(n.memory_ids) = 0 AND NOT (n)-[:RELATES_TO]-()
               DELETE n RETURN count(n) AS pruned""",
            tenant=tenant,
            ids=sorted(ends),
        )
        return len(orphans), int(pruned[0]["pruned"]) if pruned else 0

    # --- statistics ----------------------------------------------------------------------------

    async def stats(self, tenant_id: str) -> dict[str, Any]:
        nodes = await self._run(
            "MATCH (n:Entity {tenant_id: $tenant}) RETURN n.type AS type, count(n) AS count", tenant=tenant_id
        )
        edges = await self._run(
            """MATCH (:Entity {tenant_id: $tenant})-[r:RELATES_TO]->(:Entity {tenant_id: $tenant})
               WHERE r.tenant_id = $tenant
               RETURN r.relation AS relation, r.valid_to IS NULL AS open, count(r) AS count""",
            tenant=tenant_id,
        )
        by_relation: dict[str, int] = {}
        for r in edges:
            by_relation[r["relation"]] = by_relation.get(r["relation"], 0) + int(r["count"])
        return {
            "nodes": sum(int(r["count"]) for r in nodes),
            "edges": sum(by_relation.values()),
            "current_edges": sum(int(r["count"]) for r in edges if r["open"]),
            "nodes_by_type": {r["type"]: int(r["count"]) for r in nodes},
            "edges_by_relation": by_relation,
        }
