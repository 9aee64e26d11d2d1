from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from rae_common.testing import serve_app, settings_from_env
from rae_reflection.main import ReflectionSettings, create_app
from rae_reflection.service import ReflectionService


@pytest.fixture(scope="session")
def reflection_settings(infra_env: dict[str, str], ml_url: str, memory_url: str) -> ReflectionSettings:
    # Loose enough that all-MiniLM-L6-v2 groups the tests' paraphrases, tight enough to keep
    # unrelated topics apart.
    return settings_from_env(
        infra_env, ReflectionSettings, ml_url=ml_url, memory_url=memory_url, reflection_similarity=0.4
    )


@pytest.fixture(scope="module")
def app(reflection_settings: ReflectionSettings) -> FastAPI:
    return create_app(reflection_settings)


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(app) as c:
        yield c


@pytest.fixture
def service(app: FastAPI, client: httpx.AsyncClient) -> ReflectionService:  # noqa: ARG001 (started by client)
    found: ReflectionService = app.state.rae.get("service")
    return found


@pytest.fixture
async def memories(memory_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=memory_url, timeout=120) as c:
        yield c


@pytest.fixture
def tenant() -> dict[str, str]:
    return {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
