"""asyncpg pool and numbered SQL migrations per service schema."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg

from rae_common.errors import DependencyUnavailable

__all__ = [
    "ConnectionSetup",
    "Migration",
    "PoolTimeout",
    "PoolTimeouts",
    "Where",
    "apply_migrations",
    "close_pool",
    "create_pool",
    "load_migrations",
    "tenant_tx",
]

_log = logging.getLogger("rae.db")

_MIGRATION_NAME = re.compile(r"\A(\d{4})_([a-z0-9_]+)\.sql\Z")
_SCHEMA_NAME = re.compile(r"\A[a-z_][a-z0-9_]{0,62}\Z")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg has no stubs here
    """Released to the pool without asyncpg's reset query.

    That query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) is a round trip on
    every release (two of a search's critical path) for state this code never leaves on a
    connection: settings are transaction-local (`set_config(..., true)`, `SET LOCAL`), nothing
    LISTENs, cursors live inside transactions, and the one session advisory lock (migrations)
    is released in a `finally`. asyncpg still rolls back a transaction left open.
    """

    def get_reset_query(self) -> str:
        return ""


ConnectionSetup = Callable[[asyncpg.Connection], Awaitable[None]]


class PoolTimeout(DependencyUnavailable, TimeoutError):
    """No pooled connection came free in time: the database is saturated (or unreachable).

    A `TimeoutError` too, so code that already treats `OSError` as "the database is down" keeps
    doing so."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"No database connection came free within {timeout_s:g} s.",
            dependency="postgres",
            retry_after_s=1,
        )


@dataclass(frozen=True, slots=True)
class PoolTimeouts:
    """Bounds on the time a pool's users wait, so a stuck query or client never holds a connection
    (or the service's shutdown) for good. 0 turns one off."""

    # Longest a caller waits for a free connection before `PoolTimeout`.
    acquire_s: float = 5.0
    # Server-side `statement_timeout`: Postgres cancels a statement running longer.
    statement_s: float = 30.0
    # Server-side `idle_in_transaction_session_timeout`: Postgres ends a session whose open
    # transaction waits longer on its client, so its locks and its connection come back. Above
    # the longest legitimate wait inside a transaction: an HTTP call to ml (120 s timeout) in an
    # ingest's transaction or in graph's inbox transaction (an LLM extraction).
    idle_in_transaction_s: float = 150.0


class _Acquisition:
    """`pool.acquire()` with the pool's default bound, its timeout raised as `PoolTimeout`."""

    __slots__ = ("_inner", "_timeout_s")

    def __init__(self, inner: Any, timeout_s: float) -> None:
        self._inner = inner
        self._timeout_s = timeout_s

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            return await self._inner.__aenter__()
        except TimeoutError as exc:
            raise PoolTimeout(self._timeout_s) from exc

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)

    def __await__(self) -> Any:
        return self.__aenter__().__await__()


class _BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no stubs here
    """Every acquisition (`tenant_tx`, `pool.acquire()`, `pool.fetch(...)`) waits at most
    `acquire_timeout_s` unless the caller passes its own timeout."""

    def __init__(self, *args: Any, acquire_timeout_s: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        bound = timeout if timeout is not None else self.acquire_timeout_s
        inner = super().acquire(timeout=bound)
        return inner if bound is None else _Acquisition(inner, bound)


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    setup: ConnectionSetup | None = None,
    timeouts: PoolTimeouts = PoolTimeouts(),
    application_name: str | None = None,
) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb, then run `setup` (a service's own codecs);
    its waits are bounded by `timeouts` (see `PoolTimeouts`)."""

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        if setup is not None:
            await setup(conn)

    server_settings = {
        "statement_timeout": _ms(timeouts.statement_s),
        "idle_in_transaction_session_timeout": _ms(timeouts.idle_in_transaction_s),
    }
    if application_name:
        server_settings["application_name"] = application_name
    # The same arguments `asyncpg.create_pool` passes (its defaults), with the bounded pool class.
    pool = _BoundedPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=init,
        loop=None,
        connection_class=_PooledConnection,
        record_class=asyncpg.Record,
        # The client's own bound, a little after the server's: it catches a server that stopped
        # answering, while a slow statement gets Postgres's clean cancellation first.
        command_timeout=timeouts.statement_s + 5 if timeouts.statement_s else None,
        server_settings=server_settings,
        acquire_timeout_s=timeouts.acquire_s or None,
    )
    await pool
    return pool


async def close_pool(pool: asyncpg.Pool, timeout_s: float) -> None:
    """Close gracefully, but give up waiting for checked-out connections after `timeout_s` and
    terminate them: `Pool.close()` alone waits for ever for a connection that is never released,
    and a stopping service would outlive its grace period."""
    try:
        await asyncio.wait_for(pool.close(), timeout=timeout_s)
    except TimeoutError:
        _log.warning("pool connections still in use after %g s; terminating them", timeout_s)
        pool.terminate()


@contextlib.asynccontextmanager
async def tenant_tx(pool: asyncpg.Pool, tenant_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that row-level security scopes to `tenant_id` (policies read
    `current_setting('rae.tenant_id')`; queries filter by tenant too)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant_id)
        yield conn


class Where:
    """A WHERE clause built condition by condition, its values bound as `$n` parameters.

    `params` is the statement's parameter list (values already in it keep their numbers); the
    conditions' values are appended to it."""

    def __init__(self, params: list[Any] | None = None) -> None:
        self.params: list[Any] = params if params is not None else []
        self.conditions: list[str] = []

    def bind(self, value: Any) -> str:
        """`$n` of `value`, appended to the parameters."""
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def equals(self, column: str, value: Any) -> None:
        """`column = value`, unless value is None (no condition)."""
        if value is not None:
            self.add(f"{column} = {self.bind(value)}")

    def window(self, column: str, since: Any, until: Any) -> None:
        """`since <= column < until`, each bound only when given."""
        if since is not None:
            self.add(f"{column} >= {self.bind(since)}")
        if until is not None:
            self.add(f"{column} < {self.bind(until)}")

    def before(self, columns: tuple[str, str], keyset: tuple[Any, Any] | None) -> None:
        """Rows after the keyset `(time, id)` of a newest-first page (none when it is None)."""
        if keyset is not None:
            self.add(f"({columns[0]}, {columns[1]}) < ({self.bind(keyset[0])}, {self.bind(keyset[1])})")

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "true"


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """Read `NNNN_name.sql` files shipped inside `package`, in version order."""
    root: Traversable = resources.files(package) / folder
    found: list[Migration] = []
    for entry in root.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {package}: {versions}")
    return found


def _lock_key(schema: str) -> int:
    # A stable signed 64-bit key per schema for pg_advisory_lock.
    return int.from_bytes(hashlib.sha256(f"rae-migrate:{schema}".encode()).digest()[:8], "big", signed=True)


async def apply_migrations(pool: asyncpg.Pool, schema: str, migrations: list[Migration]) -> list[int]:
    """Apply what is missing, each in its own transaction; safe when replicas start together.

    A session advisory lock serialises concurrent starters: the second waits, then finds
    everything applied. Returns the versions this call applied.
    """
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    applied_now: list[int] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows: list[Any] = await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")
            done = {row["version"] for row in rows}
            for migration in migrations:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                    await conn.execute(migration.sql)
                    await conn.execute(
                        f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                applied_now.append(migration.version)
        finally:
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
            except BaseException:
                conn.terminate()  # released without a reset query: never pooled holding the lock
                raise
    return applied_now
