"""Readiness probes and one-off setup steps that use the real client libraries.

Every function here is synchronous; async clients run in a private event loop
(``asyncio.run``) so callers may use them from worker threads or from code that
already runs an event loop in another thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class ProbeFatal(Exception):
    """The server answered, but retrying cannot help (e.g. wrong credentials)."""


# Kafka error codes that are fine when (re-)creating topics.
_KAFKA_OK = 0
_KAFKA_TOPIC_ALREADY_EXISTS = 36


def postgres_setup(socket_dir: Path, port: int, *, role: str, password: str, database: str) -> None:
    """Create the application role/database and the ``vector`` extension (idempotent).

    Connects as the ``postgres`` superuser through the Unix socket (trust auth,
    socket directory reachable only by the server's owner)."""
    asyncio.run(_postgres_setup(socket_dir, port, role=role, password=password, database=database))


async def _postgres_setup(socket_dir: Path, port: int, *, role: str, password: str, database: str) -> None:
    import asyncpg

    def ident(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    conn = await asyncpg.connect(
        host=str(socket_dir), port=port, user="postgres", database="postgres", timeout=10
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(
            f"{verb} ROLE {ident(role)} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD {literal(password)}",
        )
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f"CREATE DATABASE {ident(database)} OWNER {ident(role)}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(
        host=str(socket_dir), port=port, user="postgres", database=database, timeout=10
    )
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()


def kafka_ensure_topics(bootstrap: str, topics: Sequence[str], *, partitions: int, timeout_s: float) -> None:
    """Create the missing topics; raise if the broker does not cooperate in time."""
    asyncio.run(asyncio.wait_for(_kafka_ensure_topics(bootstrap, topics, partitions), timeout_s))


async def _kafka_ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            resp = await admin.create_topics(
                [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in missing],
            )
            for item in getattr(resp, "topic_errors", ()):
                name, code = item[0], item[1]
                if code not in (_KAFKA_OK, _KAFKA_TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating Kafka topic {name} failed with error code {code}: {item}")
        still_missing = set(topics) - set(await admin.list_topics())
        if still_missing:
            raise RuntimeError(f"Kafka topics not visible after creation: {sorted(still_missing)}")
    finally:
        await admin.close()


def bolt_ping(uri: str, user: str, password: str, database: str) -> None:
    """Run ``RETURN 1`` over Bolt; raises when the server is not ready."""
    import neo4j
    import neo4j.exceptions

    with neo4j.GraphDatabase.driver(
        uri,
        auth=(user, password),
        connection_timeout=2.0,
        connection_acquisition_timeout=3.0,
        max_transaction_retry_time=0.0,
    ) as driver:
        try:
            records, _, _ = driver.execute_query("RETURN 1 AS one", database_=database)
        except neo4j.exceptions.AuthError as exc:
            raise ProbeFatal(
                f"Bolt authentication as {user!r} failed ({exc.message}). The root password is set when "
                "data/arcadedb is first created; it must match secrets.json (restore secrets.json or "
                "delete data/arcadedb).",
            ) from exc
        if not records or records[0]["one"] != 1:
            raise RuntimeError(f"unexpected Bolt answer: {records!r}")


def redis_ping(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        if not client.ping():
            raise RuntimeError("redis PING did not answer PONG")
    finally:
        client.close()


def http_client(timeout_s: float = 1.0) -> httpx.Client:
    """A client for local probes: short timeouts, no proxy settings from the environment."""
    import httpx

    return httpx.Client(timeout=timeout_s, trust_env=False)


def http_ready(client: httpx.Client, url: str) -> bool:
    """True when ``GET url`` answers 200."""
    import httpx

    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False
