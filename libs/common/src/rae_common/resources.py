"""Lifespan building blocks: open a dependency, register its readiness check, close it after.

Each is an async context manager taking the `ServiceState`, so a service's setup is a short
`AsyncExitStack` of the dependencies it really has.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import asyncpg
import neo4j
import redis.asyncio as aioredis

from rae_common.app import ServiceState
from rae_common.db import (
    ConnectionSetup,
    PoolTimeouts,
    SchemaPlan,
    check_migrated,
    close_pool,
    create_pool,
    migrate,
)
from rae_common.events import TOPIC_DLQ
from rae_common.messaging import BatchHandler, Handler, KafkaBroadcastLoop, KafkaConsumerLoop, KafkaPublisher
from rae_common.outbox import OutboxRelay
from rae_common.settings import ServiceSettings, require

__all__ = [
    "kafka_broadcast",
    "kafka_consumer",
    "kafka_publisher",
    "neo4j_driver",
    "outbox_relay",
    "postgres",
    "postgres_with_outbox",
    "redis_client",
]

_log = logging.getLogger("rae.resources")


@contextlib.asynccontextmanager
async def postgres(
    state: ServiceState,
    plan: SchemaPlan,
    *,
    connection_setup: ConnectionSetup | None = None,
) -> AsyncIterator[asyncpg.Pool]:
    """A pool with the schema migrated. Fails start-up when Postgres is unreachable: a service
    must not serve on a schema it could not check.

    With DATABASE_MIGRATE_ON_START=false nothing is applied: start-up fails naming the
    migrations the schema lacks (`rae-migrate` applies them). Otherwise the service migrates as
    `rae-migrate` would, granting DATABASE_APP_ROLE (when set) the use of its tables.

    `connection_setup` runs on every connection the pool opens; the connections opened before
    the migrations are replaced after them, so it may depend on what the migrations create
    (an extension's types, say)."""
    require(state.settings, "postgres")
    settings = state.settings
    pool = await create_pool(
        settings.database_url,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        setup=connection_setup,
        timeouts=PoolTimeouts(
            acquire_s=settings.database_acquire_timeout_s,
            statement_s=settings.database_statement_timeout_s,
            idle_in_transaction_s=settings.database_idle_in_transaction_timeout_s,
        ),
        application_name=f"rae-{settings.service_name}",
        schema=plan.schema,
    )
    try:
        async with pool.acquire() as conn:
            if settings.database_migrate_on_start:
                applied, _ = await migrate(conn, plan, settings.database_app_role)
                if applied:
                    _log.info("applied migrations %s to schema %s", applied, plan.schema)
            else:
                await check_migrated(conn, plan)
        if connection_setup is not None:
            await pool.expire_connections()

        async def probe() -> None:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

        state.add_check("postgres", probe)
        state.resources["db"] = pool
        yield pool
    finally:
        await close_pool(pool, settings.database_close_timeout_s)


def _require_topics(settings: ServiceSettings, topics: Sequence[str]) -> None:
    """Fail when a consumer reads a topic its settings class does not declare in `topics`: the
    service would not create it at start-up, and a broker that creates topics on first use would
    give it its own default partitions."""
    undeclared = sorted(set(topics) - type(settings).topics)
    if undeclared:
        raise RuntimeError(
            f"{type(settings).__name__} consumes {', '.join(undeclared)} but declares "
            f"topics={sorted(type(settings).topics)}: add them to its `topics`"
        )


@contextlib.asynccontextmanager
async def kafka_publisher(state: ServiceState) -> AsyncIterator[KafkaPublisher]:
    """A publisher that connects lazily: the service starts while the broker is down."""
    require(state.settings, "kafka")
    publisher = KafkaPublisher(
        state.settings.kafka_options(),
        client_id=state.settings.service_name,
        tracer_provider=state.tracer_provider,
    )
    state.add_check("kafka", publisher.ping)
    state.resources["publisher"] = publisher
    try:
        yield publisher
    finally:
        await publisher.stop()


@contextlib.asynccontextmanager
async def outbox_relay(
    state: ServiceState, pool: asyncpg.Pool, schema: str, publisher: KafkaPublisher
) -> AsyncIterator[OutboxRelay]:
    relay = OutboxRelay(
        pool,
        schema,
        publisher,
        tracer_provider=state.tracer_provider,
        batch_size=state.settings.outbox_batch_size,
        poll_interval_s=state.settings.outbox_poll_interval_s,
        retention_s=state.settings.outbox_retention_hours * 3600,
        stop_timeout_s=state.settings.background_stop_timeout_s,
    )
    relay.start()
    state.on_shutdown(relay.request_stop)
    state.resources["relay"] = relay
    try:
        yield relay
    finally:
        await relay.stop()


@contextlib.asynccontextmanager
async def kafka_consumer(
    state: ServiceState,
    *,
    group_id: str,
    topics: Sequence[str],
    handler: Handler,
    dlq: KafkaPublisher,
    batch_handler: BatchHandler | None = None,
) -> AsyncIterator[KafkaConsumerLoop]:
    require(state.settings, "kafka")
    settings = state.settings
    _require_topics(settings, [*topics, TOPIC_DLQ])
    loop = KafkaConsumerLoop(
        settings.kafka_options(),
        group_id=group_id,
        topics=topics,
        topics_ready=state.topics.ready if state.topics is not None else None,
        handler=handler,
        batch_handler=batch_handler,
        tracer_provider=state.tracer_provider,
        dlq=dlq,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        stop_timeout_s=settings.background_stop_timeout_s,
    )
    loop.start()
    state.on_shutdown(loop.request_stop)

    async def probe() -> None:
        # Not ready until the group has handed this member its partitions.
        if not loop.assigned.is_set():
            raise ConnectionError(f"consumer group {group_id} has not assigned partitions yet")

    state.add_check("kafka-consumer", probe)
    state.resources["consumer"] = loop
    try:
        yield loop
    finally:
        await loop.stop()


@contextlib.asynccontextmanager
async def kafka_broadcast(
    state: ServiceState, *, name: str, topics: Sequence[str], handler: Handler
) -> AsyncIterator[KafkaBroadcastLoop]:
    """Every record of `topics` from now on, in every replica (no group): for cache invalidation.

    Not a readiness check: a replica that misses records falls back on its cache's expiry. A
    handler that keeps failing drops the record (logged), having no dead-letter topic to feed."""
    require(state.settings, "kafka")
    settings = state.settings
    _require_topics(settings, topics)
    loop = KafkaBroadcastLoop(
        settings.kafka_options(),
        group_id=name,
        topics=topics,
        topics_ready=state.topics.ready if state.topics is not None else None,
        handler=handler,
        tracer_provider=state.tracer_provider,
        max_attempts=3,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        stop_timeout_s=settings.background_stop_timeout_s,
    )
    loop.start()
    state.on_shutdown(loop.request_stop)
    try:
        yield loop
    finally:
        await loop.stop()


@contextlib.asynccontextmanager
async def redis_client(state: ServiceState) -> AsyncIterator[aioredis.Redis]:
    require(state.settings, "redis")
    client = aioredis.Redis.from_url(state.settings.redis_url, socket_connect_timeout=2, socket_timeout=5)

    async def probe() -> None:
        await client.ping()

    state.add_check("redis", probe)
    state.resources["redis"] = client
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def neo4j_driver(state: ServiceState) -> AsyncIterator[neo4j.AsyncDriver]:
    require(state.settings, "neo4j")
    settings = state.settings
    driver = neo4j.AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=(settings.neo4j_user, settings.neo4j_password.get_secret_value()),
        connection_timeout=3,
    )

    async def probe() -> None:
        # Not verify_connectivity(database=...): the driver marks that argument a preview feature
        # and warns on every probe.
        async with driver.session(database=settings.neo4j_database) as session:
            await (await session.run("RETURN 1")).consume()

    state.add_check("neo4j", probe)
    state.resources["neo4j"] = driver
    try:
        yield driver
    finally:
        await driver.close()


@contextlib.asynccontextmanager
async def postgres_with_outbox(
    state: ServiceState,
    plan: SchemaPlan,
    *,
    connection_setup: ConnectionSetup | None = None,
) -> AsyncIterator[asyncpg.Pool]:
    """Postgres (migrated, with the shared `outbox` table: the plan must hold
    `shared_migrations("outbox")`), a publisher and a running relay: what every service that
    announces its own state changes needs."""
    if not any(m.name == "outbox" for m in plan.migrations):
        raise ValueError(f"the schema plan of {plan.service} lacks the shared outbox table")
    async with (
        postgres(state, plan, connection_setup=connection_setup) as pool,
        kafka_publisher(state) as publisher,
        outbox_relay(state, pool, plan.schema, publisher),
    ):
        yield pool
