"""The admin API: tenants, their API keys and their rate-limit overrides.

Creating and listing tenants and setting a tenant's rate limits are platform administration
(`AdminDep`: RAE_ADMIN_TOKEN only). A tenant's own record, its API keys and reading its limits
are also open to that tenant's `admin` scope (`TenantAdminDep`), never to another tenant's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rae_common.app import StateDep
from rae_common.auth import SCOPES, validate_tenant_id
from rae_common.errors import ProblemError
from rae_gateway.adapters.keys import DuplicateTenant, KeyStore, PrefixTaken, StoreUnavailable, UnknownTenant
from rae_gateway.api.limits import RateLimits
from rae_gateway.api.models import problems
from rae_gateway.api.security import DOCUMENTED_CREDENTIALS, AdminDep, TenantAdminDep
from rae_gateway.domain.keys import generate_key, normalise_scopes
from rae_gateway.domain.limits import BUCKETS

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=DOCUMENTED_CREDENTIALS,
    responses=problems(401, 403, 422, 503),
)

_log = logging.getLogger("rae.gateway.admin")
_T = TypeVar("_T")
_MAX_PER_MINUTE = 1_000_000

TenantIdPath = Annotated[str, Path(min_length=1, max_length=64)]


async def get_store(state: StateDep) -> KeyStore:
    store: KeyStore = state.get("keys")
    return store


KeyStoreDep = Annotated[KeyStore, Depends(get_store)]


async def _answer(call: Awaitable[_T]) -> _T:
    try:
        return await call
    except StoreUnavailable as exc:
        raise ProblemError(503, "The tenant store is unavailable.", slug="service-unavailable") from exc


class LimitOverrides(BaseModel):
    """Requests per minute per bucket for one tenant; null or absent = the gateway default, 0 = unlimited."""

    model_config = ConfigDict(extra="forbid")

    memories_create: int | None = Field(
        default=None, ge=0, le=_MAX_PER_MINUTE, description="POST /v1/memories, /batch and /ingest together."
    )
    search: int | None = Field(default=None, ge=0, le=_MAX_PER_MINUTE, description="POST /v1/search/hybrid.")
    ml_generate: int | None = Field(default=None, ge=0, le=_MAX_PER_MINUTE, description="LLM generation.")

    def stored(self) -> dict[str, int]:
        return {bucket: value for bucket, value in self.model_dump().items() if value is not None}


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="1-64 letters, digits, '.', '_' or '-'; starts with a letter or digit.")
    name: str | None = Field(default=None, min_length=1, max_length=200, description="Defaults to the id.")
    limits: LimitOverrides = Field(default_factory=LimitOverrides)

    _id = field_validator("id")(validate_tenant_id)


class TenantOut(BaseModel):
    id: str
    name: str
    limits: dict[str, int] = Field(description="The tenant's overrides (requests per minute per bucket).")
    created_at: datetime


class TenantPage(BaseModel):
    items: list[TenantOut]
    next_cursor: str | None


class TenantLimits(BaseModel):
    tenant_id: str
    overrides: dict[str, int]
    effective: dict[str, int] = Field(
        description="What applies now per bucket (requests per minute; 0 = unlimited)."
    )


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, description=f"From: {', '.join(sorted(SCOPES))}.")

    _scopes = field_validator("scopes")(normalise_scopes)


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    tenant_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key. Shown this once: only its hash is stored.")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None


def _unknown_tenant(tenant_id: str) -> ProblemError:
    return ProblemError(404, f"Tenant '{tenant_id}' does not exist.", slug="tenant-not-found")


async def _effective(state: StateDep, tenant_id: str) -> dict[str, int]:
    limits: RateLimits = state.get("rate_limits")
    return {bucket: await limits.limit_for(bucket, tenant_id) for bucket in BUCKETS}


@router.post(
    "/tenants",
    status_code=201,
    response_model=TenantOut,
    responses=problems(409),
    summary="Create a tenant (platform admin).",
)
async def create_tenant(body: TenantCreate, store: KeyStoreDep, actor: AdminDep) -> dict[str, Any]:
    try:
        row = await _answer(store.create_tenant(body.id, body.name or body.id, body.limits.stored()))
    except DuplicateTenant as exc:
        raise ProblemError(409, f"Tenant '{body.id}' already exists.", slug="tenant-exists") from exc
    _log.info("tenant %s created by %s", body.id, actor)
    return row


@router.get("/tenants", response_model=TenantPage, summary="List tenants by id (platform admin).")
async def list_tenants(
    store: KeyStoreDep,
    _actor: AdminDep,
    cursor: Annotated[str | None, Query(description="The last id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await _answer(store.list_tenants(after=cursor, limit=limit))
    return {"items": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}


@router.get(
    "/tenants/{tenant_id}", response_model=TenantOut, responses=problems(404), summary="Read a tenant."
)
async def get_tenant(tenant_id: TenantIdPath, store: KeyStoreDep, _actor: TenantAdminDep) -> dict[str, Any]:
    row = await _answer(store.get_tenant(tenant_id))
    if row is None:
        raise _unknown_tenant(tenant_id)
    return row


@router.get(
    "/tenants/{tenant_id}/limits",
    response_model=TenantLimits,
    responses=problems(404),
    summary="The tenant's rate-limit overrides and the limits in effect.",
)
async def get_limits(
    tenant_id: TenantIdPath, state: StateDep, store: KeyStoreDep, _actor: TenantAdminDep
) -> dict[str, Any]:
    row = await _answer(store.get_tenant(tenant_id))
    if row is None:
        raise _unknown_tenant(tenant_id)
    return {
        "tenant_id": tenant_id,
        "overrides": row["limits"],
        "effective": await _effective(state, tenant_id),
    }


@router.put(
    "/tenants/{tenant_id}/limits",
    response_model=TenantLimits,
    responses=problems(404),
    summary="Replace the tenant's rate-limit overrides; they apply at once (platform admin).",
)
async def put_limits(
    tenant_id: TenantIdPath, body: LimitOverrides, state: StateDep, store: KeyStoreDep, actor: AdminDep
) -> dict[str, Any]:
    row = await _answer(store.set_limits(tenant_id, body.stored()))
    if row is None:
        raise _unknown_tenant(tenant_id)
    limits: RateLimits = state.get("rate_limits")
    limits.overrides.invalidate(tenant_id)
    _log.info("limits of tenant %s set to %s by %s", tenant_id, row["limits"], actor)
    return {
        "tenant_id": tenant_id,
        "overrides": row["limits"],
        "effective": await _effective(state, tenant_id),
    }


@router.post(
    "/tenants/{tenant_id}/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problems(404),
    summary="Create an API key; the key is in this answer only.",
)
async def create_api_key(
    tenant_id: TenantIdPath, body: ApiKeyCreate, store: KeyStoreDep, actor: TenantAdminDep
) -> dict[str, Any]:
    for _ in range(3):
        new = generate_key()
        try:
            row = await _answer(
                store.create_key(
                    tenant_id,
                    name=body.name,
                    prefix=new.prefix,
                    secret_hash=new.secret_hash,
                    scopes=body.scopes,
                )
            )
        except UnknownTenant as exc:
            raise _unknown_tenant(tenant_id) from exc
        except PrefixTaken:
            continue  # the random prefix is taken (1 in 36^8 per existing key): draw another
        _log.info("API key %s (%s) created for tenant %s by %s", row["id"], row["prefix"], tenant_id, actor)
        return {**row, "key": new.plaintext}
    raise ProblemError(500, "Could not draw a free key prefix.")


@router.get(
    "/tenants/{tenant_id}/api-keys",
    response_model=ApiKeyPage,
    responses=problems(404),
    summary="List the tenant's API keys (prefixes only, never the secret).",
)
async def list_api_keys(
    tenant_id: TenantIdPath, store: KeyStoreDep, _actor: TenantAdminDep
) -> dict[str, Any]:
    if await _answer(store.get_tenant(tenant_id)) is None:
        raise _unknown_tenant(tenant_id)
    return {"items": await _answer(store.list_keys(tenant_id)), "next_cursor": None}


@router.delete(
    "/tenants/{tenant_id}/api-keys/{key_id}",
    status_code=204,
    response_class=Response,
    responses=problems(404),
    summary="Revoke an API key; it is refused from the next request on.",
)
async def revoke_api_key(
    tenant_id: TenantIdPath, key_id: uuid.UUID, store: KeyStoreDep, actor: TenantAdminDep
) -> Response:
    if not await _answer(store.revoke_key(tenant_id, key_id)):
        raise ProblemError(404, f"Tenant '{tenant_id}' has no API key {key_id}.", slug="api-key-not-found")
    _log.info("API key %s of tenant %s revoked by %s", key_id, tenant_id, actor)
    return Response(status_code=204)
