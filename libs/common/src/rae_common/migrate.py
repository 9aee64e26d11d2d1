"""`rae-migrate`: apply a service's migrations with a privileged URL, and grant its app role.

Run before the service starts (an init container, a Helm hook Job, by hand), so the service
itself can run as a role that only reads and writes rows (DATABASE_MIGRATE_ON_START=false,
DATABASE_URL naming that role). The environment is the whole interface, as in a container:

- `RAE_SERVICE`: the service (gateway, memory, ml, graph, reflection, cost, events);
- `DATABASE_URL`: a role that may change the service's schema (required: no default here);
- `DATABASE_APP_ROLE` (optional): the role the service runs as; it is granted the use of the
  schema's tables, sequences and functions, also of those later migrations create.

It applies what the service would apply at start-up (its `rae_<name>.schema.schema_plan`), under
the schema's advisory lock, so replicas running it at once apply everything once. Exit 0 with
one line saying what was done; 1 when the database refused (the reason on stderr); 2 when the
environment is wrong.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Sequence

import asyncpg
from pydantic_settings import BaseSettings, SettingsConfigDict

from rae_common.db import Grants, SchemaPlan, migrate
from rae_common.serve import ServiceName, read_environment

__all__ = ["MigrateSettings", "main", "plan_of", "run"]

#: Longest wait for the database to accept the connection.
CONNECT_TIMEOUT_S = 10.0


class MigrateSettings(BaseSettings):
    """What `rae-migrate` reads (the process environment only, like `rae-serve`)."""

    model_config = SettingsConfigDict(extra="ignore")

    rae_service: ServiceName
    database_url: str
    database_app_role: str = ""


def plan_of(service: str) -> SchemaPlan:
    """The schema plan of `service`: the one its start-up applies."""
    module = importlib.import_module(f"rae_{service}.schema")
    plan: SchemaPlan = module.schema_plan()
    return plan


async def run(settings: MigrateSettings) -> str:
    """Migrate and grant; the line to print. Raises what the database raised."""
    plan = plan_of(settings.rae_service)
    conn = await asyncpg.connect(
        settings.database_url,
        timeout=CONNECT_TIMEOUT_S,
        server_settings={"application_name": f"rae-migrate-{settings.rae_service}"},
    )
    try:
        applied, grants = await migrate(conn, plan, settings.database_app_role)
    finally:
        await conn.close()
    return _summary(plan, applied, grants)


def _summary(plan: SchemaPlan, applied: list[int], grants: Grants | None) -> str:
    labels = [m.label for m in plan.migrations if m.version in set(applied)]
    done = (
        f"applied {len(labels)} migration(s) to schema {plan.schema}: {', '.join(labels)}"
        if labels
        else f"schema {plan.schema} is up to date ({len(plan.migrations)} migrations)"
    )
    if grants is None:
        return f"rae-migrate {plan.service}: {done}; no DATABASE_APP_ROLE, nothing granted"
    extension_schemas = (
        f", usage on extension schema(s) {', '.join(grants.extension_schemas)}"
        if grants.extension_schemas
        else ""
    )
    return (
        f"rae-migrate {plan.service}: {done}; granted {grants.role} usage on schema {grants.schema}, "
        f"rows of its {grants.tables} tables, {grants.sequences} sequences and {grants.functions} "
        f"functions (and of those created later){extension_schemas}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # no options: the environment is the whole interface, as in a container
    settings = read_environment(MigrateSettings, "rae-migrate")
    if settings is None:
        return 2
    try:
        line = asyncio.run(run(settings))
    except (
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        RuntimeError,
        ValueError,
    ) as exc:
        # Each names what to fix: an unreachable server, a refused statement, a missing role or
        # extension (`ExtensionUnavailable`), a DATABASE_APP_ROLE that is the migrating role.
        print(f"rae-migrate {settings.rae_service}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print(line)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
