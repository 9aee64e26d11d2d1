"""Postgres store of tenants, their rate-limit overrides and their API keys (schema `gateway`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

__all__ = ["DuplicateTenant", "KeyStore", "PrefixTaken", "StoreUnavailable", "UnknownTenant"]

SCHEMA = "gateway"
_KEY_COLUMNS = "id, tenant_id, name, prefix, scopes, created_at, revoked_at, last_used_at"
# Errors that mean "Postgres did not answer", as opposed to a bad statement.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


class DuplicateTenant(Exception):
    pass


class UnknownTenant(Exception):
    pass


class PrefixTaken(Exception):
    """Another key already has this random prefix; draw a new key."""


class StoreUnavailable(Exception):
    """Postgres could not be reached; callers answer 503."""


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        try:
            async with self._pool.acquire() as conn:
                return [dict(row) for row in await conn.fetch(sql, *args)]
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self._fetch(sql, *args)
        return rows[0] if rows else None

    async def create_tenant(self, tenant_id: str, name: str, limits: Mapping[str, int]) -> dict[str, Any]:
        row = await self._fetchrow(
            f"""INSERT INTO {SCHEMA}.tenants (id, name, limits) VALUES ($1, $2, $3)
                ON CONFLICT (id) DO NOTHING RETURNING id, name, limits, created_at""",
            tenant_id,
            name,
            dict(limits),
        )
        if row is None:
            raise DuplicateTenant(tenant_id)
        return row

    async def get_tenant(self, tenant_id: str) -> dict[str, Any] | None:
        return await self._fetchrow(
            f"SELECT id, name, limits, created_at FROM {SCHEMA}.tenants WHERE id = $1", tenant_id
        )

    async def list_tenants(self, *, after: str | None, limit: int) -> list[dict[str, Any]]:
        return await self._fetch(
            f"""SELECT id, name, limits, created_at FROM {SCHEMA}.tenants
                WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2""",
            after,
            limit,
        )

    async def tenant_limits(self, tenant_id: str) -> dict[str, int]:
        row = await self._fetchrow(f"SELECT limits FROM {SCHEMA}.tenants WHERE id = $1", tenant_id)
        return {} if row is None else {str(k): int(v) for k, v in row["limits"].items()}

    async def set_limits(self, tenant_id: str, limits: Mapping[str, int]) -> dict[str, Any] | None:
        return await self._fetchrow(
            f"""UPDATE {SCHEMA}.tenants SET limits = $2 WHERE id = $1
                RETURNING id, name, limits, created_at""",
            tenant_id,
            dict(limits),
        )

    async def create_key(
        self, tenant_id: str, *, name: str, prefix: str, secret_hash: str, scopes: Sequence[str]
    ) -> dict[str, Any]:
        """Insert a key; UnknownTenant when the tenant does not exist, PrefixTaken on a collision."""
        try:
            row = await self._fetchrow(
                f"""INSERT INTO {SCHEMA}.api_keys (id, tenant_id, name, prefix, secret_hash, scopes)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLUMNS}""",
                uuid.uuid4(),
                tenant_id,
                name,
                prefix,
                secret_hash,
                list(scopes),
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise UnknownTenant(tenant_id) from exc
        except asyncpg.UniqueViolationError as exc:
            raise PrefixTaken(prefix) from exc
        assert row is not None
        return row

    async def list_keys(self, tenant_id: str) -> list[dict[str, Any]]:
        return await self._fetch(
            f"""SELECT {_KEY_COLUMNS} FROM {SCHEMA}.api_keys WHERE tenant_id = $1
                ORDER BY created_at, id""",
            tenant_id,
        )

    async def revoke_key(self, tenant_id: str, key_id: uuid.UUID) -> bool:
        """Revoke (idempotently); False when the tenant has no such key."""
        row = await self._fetchrow(
            f"""UPDATE {SCHEMA}.api_keys SET revoked_at = coalesce(revoked_at, now())
                WHERE tenant_id = $1 AND id = $2 RETURNING id""",
            tenant_id,
            key_id,
        )
        return row is not None

    async def find_key(self, prefix: str) -> dict[str, Any] | None:
        """The live key with this prefix, with its secret hash; None when unknown or revoked."""
        return await self._fetchrow(
            f"""SELECT id, tenant_id, scopes, secret_hash FROM {SCHEMA}.api_keys
                WHERE prefix = $1 AND revoked_at IS NULL""",
            prefix,
        )

    async def touch_key(self, key_id: uuid.UUID, min_interval_s: float) -> None:
        """Record a use, at most once per `min_interval_s` across every replica."""
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    f"""UPDATE {SCHEMA}.api_keys SET last_used_at = now()
                        WHERE id = $1 AND (last_used_at IS NULL
                                           OR last_used_at < now() - make_interval(secs => $2))""",
                    key_id,
                    min_interval_s,
                )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
