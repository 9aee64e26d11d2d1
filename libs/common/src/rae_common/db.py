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
    "ExtensionUnavailable",
    "Grants",
    "Migration",
    "PoolTimeout",
    "PoolTimeouts",
    "SchemaBehind",
    "SchemaPlan",
    "Where",
    "apply_migrations",
    "check_migrated",
    "close_pool",
    "create_pool",
    "grant_app_role",
    "load_migrations",
    "migrate",
    "missing_migrations",
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

    @property
    def label(self) -> str:
        """`0009_erasures`: as its file is named."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class SchemaPlan:
    """A service's Postgres schema and every migration it needs, in order: what the service
    applies at start-up (DATABASE_MIGRATE_ON_START) and `rae-migrate` applies before it, from
    one list (each service's `rae_<name>.schema.schema_plan`)."""

    service: str
    schema: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        if not _SCHEMA_NAME.match(self.schema):
            raise ValueError(f"invalid schema name {self.schema!r}")


class SchemaBehind(RuntimeError):
    """The schema lacks migrations this release needs, and the service may not apply them."""


class ExtensionUnavailable(RuntimeError):
    """A migration needs a Postgres extension that is not installed and that its role cannot
    install."""


@dataclass(frozen=True, slots=True)
class Grants:
    """What `grant_app_role` gave a role."""

    role: str
    schema: str
    tables: int
    sequences: int
    functions: int
    extension_schemas: tuple[str, ...] = ()


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
    schema: str | None = None,
) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb, then run `setup` (a service's own codecs);
    its waits are bounded by `timeouts` (see `PoolTimeouts`).

    With a `schema`, unqualified names are also looked up there, after the database's own search
    path: its migrations ran with it on their path, so an extension they created finds its home
    there on a database that did not have it (pgvector's `vector`, cast to by unqualified name)."""
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        if schema is not None:
            await conn.execute(
                "SELECT set_config('search_path', concat_ws(', ', "
                "nullif(current_setting('search_path'), ''), quote_ident($1)), false)",
                schema,
            )
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


@contextlib.asynccontextmanager
async def _schema_lock(conn: asyncpg.Connection, schema: str) -> AsyncIterator[None]:
    """The session advisory lock that serialises whoever migrates `schema` (replicas starting
    together, `rae-migrate` in several pods): the second waits, then finds everything done."""
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
    try:
        yield
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
        except BaseException:
            conn.terminate()  # released without a reset query: never pooled holding the lock
            raise


async def apply_migrations(pool: asyncpg.Pool, schema: str, migrations: list[Migration]) -> list[int]:
    """Apply what is missing, each in its own transaction; safe when replicas start together.

    A session advisory lock serialises concurrent starters: the second waits, then finds
    everything applied. Returns the versions this call applied.
    """
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    async with pool.acquire() as conn, _schema_lock(conn, schema):
        return await _apply(conn, schema, migrations)


async def migrate(
    conn: asyncpg.Connection, plan: SchemaPlan, app_role: str = ""
) -> tuple[list[int], Grants | None]:
    """Apply the plan's missing migrations, then (given an `app_role`) grant that role what the
    service needs, under the schema's lock: what `rae-migrate` and a service migrating at
    start-up do. Returns the versions applied and the grants."""
    async with _schema_lock(conn, plan.schema):
        applied = await _apply(conn, plan.schema, list(plan.migrations))
        grants = await grant_app_role(conn, plan, app_role) if app_role else None
    return applied, grants


async def _apply(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[int]:
    # Created only when missing: CREATE SCHEMA checks the database's CREATE privilege even when
    # the schema exists, and a migrating role may be given its schema by an administrator
    # without being allowed to create others.
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    await conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    rows: list[Any] = await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")
    done = {row["version"] for row in rows}
    applied_now: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
        except (
            asyncpg.InsufficientPrivilegeError,
            asyncpg.FeatureNotSupportedError,
            asyncpg.UndefinedFileError,
        ) as exc:
            await _explain_missing_extension(conn, migration, exc)
            raise
        applied_now.append(migration.version)
    return applied_now


_CREATE_EXTENSION = re.compile(
    r'CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([a-z_][a-z0-9_]*)"?', re.IGNORECASE
)

#: What an operator knows an extension as.
_EXTENSION_NAMES = {"vector": "the pgvector extension"}


async def _explain_missing_extension(conn: asyncpg.Connection, migration: Migration, exc: Exception) -> None:
    """Raise `ExtensionUnavailable` when `migration` failed because an extension it creates is
    missing and could not be created here (no privilege, or not on the server at all): the raw
    error ("permission denied to create extension") does not say what to do about it."""
    for name in _CREATE_EXTENSION.findall(migration.sql):
        if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = $1", name):
            continue
        what = f"{_EXTENSION_NAMES.get(name, 'the extension')} `{name}`"
        database, role = await conn.fetchrow("SELECT current_database(), current_user")
        available = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = $1", name)
        if not available:
            raise ExtensionUnavailable(
                f"{what} is not available on the Postgres server of database {database} "
                f"(migration {migration.label}: {exc}): install it on the server (on managed "
                f"Postgres, enable or allow-list `{name}`), then run the migrations again"
            ) from exc
        raise ExtensionUnavailable(
            f"{what} is not installed in database {database} and role {role} cannot create it "
            f"(migration {migration.label}: {exc}): run `CREATE EXTENSION {name};` in database "
            f"{database} as a superuser (on managed Postgres, its administrator role), or run the "
            "migrations (rae-migrate) with a role allowed to create it; then start again"
        ) from exc


async def missing_migrations(conn: asyncpg.Connection, plan: SchemaPlan) -> list[Migration]:
    """The plan's migrations not applied to its schema yet (all of them when it has none)."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{plan.schema}.schema_migrations")
    if not exists:
        return list(plan.migrations)
    rows: list[Any] = await conn.fetch(f"SELECT version FROM {plan.schema}.schema_migrations")
    done = {row["version"] for row in rows}
    return [m for m in plan.migrations if m.version not in done]


async def check_migrated(conn: asyncpg.Connection, plan: SchemaPlan) -> None:
    """Raise `SchemaBehind` naming what is missing, for a service that does not migrate itself."""
    try:
        missing = await missing_migrations(conn, plan)
    except asyncpg.InsufficientPrivilegeError as exc:
        role = await conn.fetchval("SELECT current_user")
        raise SchemaBehind(
            f"role {role} may not read schema {plan.schema} ({exc}) and DATABASE_MIGRATE_ON_START=false: "
            f"run `rae-migrate` (RAE_SERVICE={plan.service}, DATABASE_URL of a privileged role, "
            f"DATABASE_APP_ROLE={role}) to apply the migrations and grant {role} their use"
        ) from exc
    if missing:
        raise SchemaBehind(
            f"schema {plan.schema} lacks migrations {', '.join(m.label for m in missing)} and "
            f"DATABASE_MIGRATE_ON_START=false: run `rae-migrate` (RAE_SERVICE={plan.service}, "
            "DATABASE_URL of a privileged role) first, or let the service migrate at start-up"
        )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def grant_app_role(conn: asyncpg.Connection, plan: SchemaPlan, role: str) -> Grants:
    """Give `role` what the service needs in its schema and no more: USAGE on it; SELECT, INSERT,
    UPDATE and DELETE on its tables (SELECT only on `schema_migrations`, read at start-up); USAGE
    and SELECT on its sequences; EXECUTE on its functions; the same on what later migrations
    create (default privileges of the migrating role); USAGE on the schemas of the extensions
    its migrations create. No CREATE anywhere, no ownership: row-level security, forced on the
    tenant tables, holds for it as for their owner. Run it again after every migration."""
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        raise ValueError(
            f"DATABASE_APP_ROLE={role}: no such role; create it first "
            f"(CREATE ROLE {_ident(role)} LOGIN PASSWORD '...')"
        )
    if await conn.fetchval("SELECT $1 = current_user", role):
        raise ValueError(
            f"DATABASE_APP_ROLE={role} is the role that migrates (DATABASE_URL): the app role is "
            "another, unprivileged one; leave DATABASE_APP_ROLE empty to grant nothing"
        )
    schema, who = plan.schema, _ident(role)
    rows = "SELECT, INSERT, UPDATE, DELETE"
    async with conn.transaction():
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {who}")
        await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {who}")
        await conn.execute(f"GRANT {rows} ON ALL TABLES IN SCHEMA {schema} TO {who}")
        await conn.execute(f"REVOKE INSERT, UPDATE, DELETE ON {schema}.schema_migrations FROM {who}")
        await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {who}")
        await conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {who}")
        for objects, privileges in (
            ("TABLES", rows),
            ("SEQUENCES", "USAGE, SELECT"),
            ("FUNCTIONS", "EXECUTE"),
        ):
            await conn.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {privileges} ON {objects} TO {who}"
            )
        extensions = sorted({name for m in plan.migrations for name in _CREATE_EXTENSION.findall(m.sql)})
        extension_schemas: list[str] = []
        for (nspname,) in await conn.fetch(
            """SELECT DISTINCT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
               WHERE e.extname = ANY($1::text[]) AND NOT has_schema_privilege($2, n.oid, 'USAGE')""",
            extensions,
            role,
        ):
            await conn.execute(f"GRANT USAGE ON SCHEMA {_ident(nspname)} TO {who}")
            extension_schemas.append(nspname)
        counts = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE c.relkind IN ('r', 'p')) AS tables,
                      count(*) FILTER (WHERE c.relkind = 'S') AS sequences
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1""",
            schema,
        )
        functions = await conn.fetchval(
            # Its own functions, not those of an extension living in its schema.
            """SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = $1 AND NOT EXISTS (
                   SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
            schema,
        )
    return Grants(role, schema, counts["tables"], counts["sequences"], functions, tuple(extension_schemas))
