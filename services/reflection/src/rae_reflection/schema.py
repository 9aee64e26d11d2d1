"""What the service keeps in Postgres: its schema and every migration of it, in order. Its
start-up (DATABASE_MIGRATE_ON_START) and `rae-migrate` both apply this plan."""

from __future__ import annotations

from rae_common.db import SchemaPlan, load_migrations
from rae_common.outbox import shared_migrations
from rae_reflection.adapters.repository import SCHEMA

__all__ = ["SCHEMA", "schema_plan"]


def schema_plan() -> SchemaPlan:
    return SchemaPlan(
        "reflection", SCHEMA, (*load_migrations("rae_reflection"), *shared_migrations("outbox", "inbox"))
    )
