"""Every wait on Postgres is bounded: acquiring a connection, a statement, a transaction left idle,
and closing a pool whose connections are still checked out (issue #16)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from rae_common.db import PoolTimeout, PoolTimeouts, close_pool, create_pool, tenant_tx
from rae_common.errors import DependencyUnavailable
from rae_common.settings import ServiceSettings
from rae_common.testing import eventually


async def test_a_full_pool_gives_up_after_the_acquire_timeout(settings: ServiceSettings) -> None:
    pool = await create_pool(
        settings.database_url, min_size=1, max_size=1, timeouts=PoolTimeouts(acquire_s=0.3)
    )
    try:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(PoolTimeout) as caught:
                async with tenant_tx(pool, "tenant-a"):
                    pass
            assert time.monotonic() - started < 2
            with pytest.raises(PoolTimeout):
                await pool.fetchval("SELECT 1")  # the pool's own shortcuts acquire the same way
        # What the problem handlers answer with 503, and what `except OSError` code calls "down".
        assert isinstance(caught.value, DependencyUnavailable) and isinstance(caught.value, TimeoutError)
        assert caught.value.retry_after_s >= 1
        assert await pool.fetchval("SELECT 1") == 1  # released: usable again
    finally:
        await pool.close()


async def test_postgres_cancels_a_statement_over_the_statement_timeout(settings: ServiceSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=1, timeouts=PoolTimeouts(statement_s=0.3))
    try:
        with pytest.raises(asyncpg.QueryCanceledError):
            await pool.execute("SELECT pg_sleep(5)")
        assert await pool.fetchval("SHOW statement_timeout") == "300ms"
    finally:
        await pool.close()


async def test_postgres_ends_a_session_left_idle_in_a_transaction(settings: ServiceSettings) -> None:
    pool = await create_pool(
        settings.database_url,
        max_size=1,
        timeouts=PoolTimeouts(idle_in_transaction_s=0.3),
        application_name="rae-idle-test",
    )
    observer = await asyncpg.connect(settings.database_url)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            pid = await conn.fetchval("SELECT pg_backend_pid()")

            async def session_gone() -> bool | None:
                alive = await observer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
                return True if alive == 0 else None

            await eventually(session_gone, timeout_s=10, what="the idle transaction's session to end")
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
                await conn.fetchval("SELECT 1")
        # The pool replaces the dead connection.
        assert await pool.fetchval("SELECT current_setting('application_name')") == "rae-idle-test"
    finally:
        await observer.close()
        await pool.close()


async def test_closing_a_pool_with_a_connection_never_released_ends_within_the_bound(
    settings: ServiceSettings,
) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    holder = await pool.acquire()  # a request stuck for good: never released
    pid = await holder.fetchval("SELECT pg_backend_pid()")
    started = time.monotonic()
    await asyncio.wait_for(close_pool(pool, timeout_s=0.5), timeout=10)
    assert time.monotonic() - started < 5
    observer = await asyncpg.connect(settings.database_url)
    try:

        async def session_gone() -> bool | None:
            alive = await observer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
            return True if alive == 0 else None

        await eventually(session_gone, timeout_s=10, what="the stuck connection to be closed")
    finally:
        await observer.close()
