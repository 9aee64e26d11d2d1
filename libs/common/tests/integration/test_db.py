"""Migrations against real Postgres: ordered, recorded, and safe when replicas start together."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider

from rae_common import resources
from rae_common.app import ServiceState
from rae_common.db import Migration, SchemaPlan, apply_migrations, create_pool, load_migrations, tenant_tx
from rae_common.settings import ServiceSettings
from rae_common.telemetry import RequestMetrics

# Not idempotent on purpose: applying either twice would fail.
MIGRATIONS = [
    Migration(1, "things", "CREATE TABLE things (id int PRIMARY KEY, body jsonb NOT NULL)"),
    Migration(2, "more", "ALTER TABLE things ADD COLUMN label text; CREATE EXTENSION IF NOT EXISTS vector"),
]


async def test_applies_in_order_then_nothing(pool: asyncpg.Pool, schema: str) -> None:
    assert await apply_migrations(pool, schema, MIGRATIONS) == [1, 2]
    assert await apply_migrations(pool, schema, MIGRATIONS) == []
    await pool.execute(f"INSERT INTO {schema}.things (id, body, label) VALUES (1, $1, 'x')", {"a": [1]})
    assert await pool.fetchval(f"SELECT body FROM {schema}.things") == {"a": [1]}


async def test_concurrent_starters_apply_each_migration_once(settings: ServiceSettings, schema: str) -> None:
    pools = [await create_pool(settings.database_url, max_size=2) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(p, schema, MIGRATIONS) for p in pools))
        rows = await pools[0].fetch(f"SELECT version FROM {schema}.schema_migrations ORDER BY version")
    finally:
        for p in pools:
            await p.close()
    assert sorted(v for applied in results for v in applied) == [1, 2]
    assert [r["version"] for r in rows] == [1, 2]


async def test_a_failing_migration_leaves_nothing_half_applied(pool: asyncpg.Pool, schema: str) -> None:
    broken = [*MIGRATIONS, Migration(3, "broken", "ALTER TABLE things ADD COLUMN x int; SELECT 1/0")]
    with pytest.raises(asyncpg.DivisionByZeroError):
        await apply_migrations(pool, schema, broken)
    columns = await pool.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'things'",
        schema,
    )
    assert "x" not in {c["column_name"] for c in columns}
    assert await pool.fetchval(f"SELECT max(version) FROM {schema}.schema_migrations") == 2


def test_shared_migrations_ship_with_the_package() -> None:
    names = {m.name for m in load_migrations("rae_common")}
    assert {"outbox", "inbox"} <= names


async def test_invalid_schema_name_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError):
        await apply_migrations(pool, "bad; DROP", [])


async def test_a_released_connection_carries_no_tenant_or_transaction(settings: ServiceSettings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        with pytest.raises(RuntimeError):
            async with tenant_tx(pool, "tenant-a") as conn:
                assert await conn.fetchval("SELECT current_setting('rae.tenant_id', true)") == "tenant-a"
                raise RuntimeError("the request failed mid-transaction")
        async with tenant_tx(pool, "tenant-b") as conn:
            assert await conn.fetchval("SELECT current_setting('rae.tenant_id', true)") == "tenant-b"
        async with pool.acquire() as conn:  # the same (only) connection, outside any transaction
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT current_setting('rae.tenant_id', true)") in ("", None)
    finally:
        await pool.close()


async def test_create_pool_runs_the_setup_on_every_connection(settings: ServiceSettings) -> None:
    async def setup(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT set_config('rae.test_setup', 'ran', false)")

    pool = await create_pool(settings.database_url, min_size=2, max_size=2, setup=setup)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            for conn in (first, second):
                assert await conn.fetchval("SELECT current_setting('rae.test_setup', true)") == "ran"
    finally:
        await pool.close()


class _PostgresSettings(ServiceSettings):
    uses = frozenset({"postgres"})


async def test_the_connection_setup_sees_what_the_migrations_created(
    settings: ServiceSettings, schema: str
) -> None:
    """A setup may need a type a migration creates (memory registers pgvector's codec): the
    connections the pool opened before migrating are replaced, so none is handed out without it."""

    async def setup(conn: asyncpg.Connection) -> None:
        found = await conn.fetchval("SELECT to_regtype($1) IS NOT NULL", f"{schema}.marker")
        await conn.execute("SELECT set_config('rae.test_saw_type', $1, false)", str(found).lower())

    sized = _PostgresSettings(database_url=settings.database_url, database_pool_min=3, database_pool_max=3)
    state = ServiceState(settings=sized, tracer_provider=TracerProvider(), metrics=RequestMetrics("t"))
    plan = SchemaPlan("test", schema, (Migration(1, "marker", "CREATE TYPE marker AS ENUM ('x')"),))
    async with resources.postgres(state, plan, connection_setup=setup) as pool:
        async with pool.acquire() as a, pool.acquire() as b, pool.acquire() as c:
            seen = [await conn.fetchval("SELECT current_setting('rae.test_saw_type')") for conn in (a, b, c)]
    assert seen == ["true", "true", "true"]
