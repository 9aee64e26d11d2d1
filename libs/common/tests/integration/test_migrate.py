"""`rae-migrate` and least-privilege app roles, against the real test Postgres.

Each test works in a database of its own (created and dropped here as the server's superuser),
so the grants, roles and schemas it makes never touch the session's database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider

from rae_common import resources
from rae_common.app import ServiceState
from rae_common.db import SchemaBehind
from rae_common.migrate import plan_of
from rae_common.settings import ServiceSettings
from rae_common.telemetry import RequestMetrics
from rae_common.testing import serve_app, settings_from_env
from rae_localstack import Stack
from rae_memory.main import MemorySettings, create_app

RAE_MIGRATE = shutil.which("rae-migrate", path=os.path.dirname(sys.executable))


@dataclass(frozen=True)
class Server:
    """Where the test Postgres listens, and a superuser's URL for any of its databases."""

    host: str
    port: int
    superuser: str

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        if user is None:  # the superuser, through the Unix socket (trust)
            return f"postgresql://{self.superuser}@/{database}?host={quote(self.host)}&port={self.port}"
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def server(stack: Stack) -> Server:
    # The local stack's superuser reaches the server through its socket only; it is the one
    # role here that may create databases and roles.
    assert not stack.is_external("postgres"), "these tests create databases and roles as the superuser"
    socket_dir = stack._pg_socket_dir(stack.data_dir("postgres"), None)
    return Server(str(socket_dir), stack.port("postgres"), "postgres")


@dataclass
class Scratch:
    """Databases and roles a test creates; all dropped at its end."""

    server: Server
    databases: list[str]
    roles: list[str]

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.server.url("postgres"))

    async def database(self) -> str:
        name = f"rae_roles_{uuid.uuid4().hex[:10]}"
        conn = await self._admin()
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        self.databases.append(name)
        return name

    async def role(self, prefix: str = "rae_app") -> tuple[str, str]:
        name, password = f"{prefix}_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        conn = await self._admin()
        try:
            await conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        finally:
            await conn.close()
        self.roles.append(name)
        return name, password

    async def drop(self) -> None:
        conn = await self._admin()
        try:
            for name in self.databases:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            for name in self.roles:
                await conn.execute(f"DROP ROLE IF EXISTS {name}")
        finally:
            await conn.close()


@pytest.fixture
async def scratch(server: Server) -> AsyncIterator[Scratch]:
    made = Scratch(server, [], [])
    yield made
    await made.drop()


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


async def rae_migrate(**env: str) -> Run:
    """The installed console script, with only `env` (and PATH) in its environment."""
    assert RAE_MIGRATE is not None, "rae-migrate is not installed in the venv (pip install -e libs/common)"
    process = await asyncio.create_subprocess_exec(
        RAE_MIGRATE,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def memory_settings(infra_env: dict[str, str], ml_url: str, **overrides: object) -> MemorySettings:
    return settings_from_env(infra_env, MemorySettings, ml_url=ml_url, **overrides)


async def test_an_app_role_granted_by_rae_migrate_serves_memory_with_tenants_apart(
    scratch: Scratch, infra_env: dict[str, str], ml_url: str
) -> None:
    database = await scratch.database()
    role, password = await scratch.role()
    migrated = await rae_migrate(
        RAE_SERVICE="memory", DATABASE_URL=scratch.server.url(database), DATABASE_APP_ROLE=role
    )
    assert migrated.code == 0, migrated.err
    versions = len(plan_of("memory").migrations)
    assert migrated.out.strip().startswith(
        f"rae-migrate memory: applied {versions} migration(s) to schema memory"
    )
    assert f"granted {role} usage on schema memory" in migrated.out
    again = await rae_migrate(
        RAE_SERVICE="memory", DATABASE_URL=scratch.server.url(database), DATABASE_APP_ROLE=role
    )
    assert again.code == 0, again.err
    assert f"schema memory is up to date ({versions} migrations)" in again.out

    app_url = scratch.server.url(database, role, password)
    settings = memory_settings(infra_env, ml_url, database_url=app_url, database_migrate_on_start=False)
    alice, bob = {"X-Tenant-ID": "t-alice"}, {"X-Tenant-ID": "t-bob"}
    async with serve_app(create_app(settings)) as client:
        created = await client.post(
            "/v1/memories", json={"content": "Alice keeps bees in Lyon"}, headers=alice
        )
        assert created.status_code == 201, created.text
        memory_id = created.json()["id"]
        assert (await client.get(f"/v1/memories/{memory_id}", headers=alice)).status_code == 200
        found = await client.post("/v1/search/hybrid", json={"query": "who keeps bees?"}, headers=alice)
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["results"]][:1] == [memory_id]
        # Row-level security holds for the app role: the other tenant sees nothing.
        assert (await client.get(f"/v1/memories/{memory_id}", headers=bob)).status_code == 404
        elsewhere = await client.post("/v1/search/hybrid", json={"query": "who keeps bees?"}, headers=bob)
        assert elsewhere.json()["results"] == []

    conn = await asyncpg.connect(app_url)
    try:
        # No tenant declared: the policies show no row, although the role may read the table.
        assert await conn.fetchval("SELECT count(*) FROM memory.memories") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE memory.intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM memory.schema_migrations")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE memory.memories DISABLE ROW LEVEL SECURITY")
    finally:
        await conn.close()


async def test_replicas_running_rae_migrate_at_once_apply_each_migration_once(scratch: Scratch) -> None:
    database = await scratch.database()
    role, _ = await scratch.role()
    env = {"RAE_SERVICE": "cost", "DATABASE_URL": scratch.server.url(database), "DATABASE_APP_ROLE": role}
    runs = await asyncio.gather(*(rae_migrate(**env) for _ in range(3)))
    assert [r.code for r in runs] == [0, 0, 0], [r.err for r in runs]
    applied = [r for r in runs if "applied" in r.out]
    assert len(applied) == 1, [r.out for r in runs]
    conn = await asyncpg.connect(scratch.server.url(database))
    try:
        versions = await conn.fetchval("SELECT count(*) FROM cost.schema_migrations")
        assert versions == len(plan_of("cost").migrations)
        # A table a later migration creates is the app role's too (default privileges).
        await conn.execute("CREATE TABLE cost.later (id int)")
        assert await conn.fetchval("SELECT has_table_privilege($1, 'cost.later', 'INSERT')", role)
        assert not await conn.fetchval("SELECT has_schema_privilege($1, 'cost', 'CREATE')", role)
    finally:
        await conn.close()


class _PostgresSettings(ServiceSettings):
    uses = frozenset({"postgres"})


async def test_a_service_that_may_not_migrate_refuses_a_schema_that_lacks_migrations(
    scratch: Scratch,
) -> None:
    database = await scratch.database()
    plan = plan_of("reflection")
    settings = _PostgresSettings(database_url=scratch.server.url(database), database_migrate_on_start=False)

    async def start() -> None:
        state = ServiceState(settings=settings, tracer_provider=TracerProvider(), metrics=RequestMetrics("t"))
        async with resources.postgres(state, plan):
            pass

    with pytest.raises(SchemaBehind) as never:
        await start()
    assert f"schema reflection lacks migrations {', '.join(m.label for m in plan.migrations)}" in str(
        never.value
    )
    assert "DATABASE_MIGRATE_ON_START=false: run `rae-migrate` (RAE_SERVICE=reflection" in str(never.value)

    assert (await rae_migrate(RAE_SERVICE="reflection", DATABASE_URL=settings.database_url)).code == 0
    await start()  # up to date: it starts
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "DELETE FROM reflection.schema_migrations WHERE version = $1", plan.migrations[-1].version
        )
    finally:
        await conn.close()
    with pytest.raises(SchemaBehind, match=f"lacks migrations {plan.migrations[-1].label} and"):
        await start()


async def test_a_role_without_access_to_the_schema_is_told_to_run_rae_migrate(scratch: Scratch) -> None:
    database = await scratch.database()
    role, password = await scratch.role()
    assert (await rae_migrate(RAE_SERVICE="cost", DATABASE_URL=scratch.server.url(database))).code == 0
    settings = _PostgresSettings(
        database_url=scratch.server.url(database, role, password), database_migrate_on_start=False
    )
    state = ServiceState(settings=settings, tracer_provider=TracerProvider(), metrics=RequestMetrics("t"))
    with pytest.raises(
        SchemaBehind, match=f"role {role} may not read schema cost .* DATABASE_APP_ROLE={role}"
    ):
        async with resources.postgres(state, plan_of("cost")):
            pass


async def test_a_missing_vector_extension_the_role_cannot_create_is_named_with_the_fix(
    scratch: Scratch,
) -> None:
    database = await scratch.database()
    role, password = await scratch.role("rae_owner")
    conn = await asyncpg.connect(scratch.server.url(database))
    try:
        # The role owns the service's schema but may not create anything else in the database.
        await conn.execute(f"CREATE SCHEMA memory AUTHORIZATION {role}")
        assert not await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
    finally:
        await conn.close()
    run = await rae_migrate(RAE_SERVICE="memory", DATABASE_URL=scratch.server.url(database, role, password))
    assert run.code == 1
    assert (
        f"the pgvector extension `vector` is not installed in database {database} and role {role} "
        "cannot create it"
    ) in run.err
    assert f"run `CREATE EXTENSION vector;` in database {database} as a superuser" in run.err
    assert "Traceback" not in run.err


async def test_rae_migrate_names_what_is_wrong_with_its_environment(scratch: Scratch) -> None:
    no_url = await rae_migrate(RAE_SERVICE="memory")
    assert (no_url.code, no_url.out) == (2, "")
    assert "DATABASE_URL: Field required" in no_url.err
    unknown = await rae_migrate(RAE_SERVICE="billing", DATABASE_URL=scratch.server.url("postgres"))
    assert unknown.code == 2
    assert "RAE_SERVICE: Input should be 'gateway', 'memory'" in unknown.err
    database = await scratch.database()
    no_role = await rae_migrate(
        RAE_SERVICE="gateway", DATABASE_URL=scratch.server.url(database), DATABASE_APP_ROLE="rae_nobody"
    )
    assert no_role.code == 1
    assert "DATABASE_APP_ROLE=rae_nobody: no such role; create it first" in no_role.err


def test_every_service_has_one_schema_plan() -> None:
    """rae-migrate finds each service's plan; each has its own schema."""
    plans = {
        name: plan_of(name) for name in ("gateway", "memory", "ml", "graph", "reflection", "cost", "events")
    }
    assert {name: plan.service for name, plan in plans.items()} == {name: name for name in plans}
    assert len({plan.schema for plan in plans.values()}) == len(plans)
