from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from rae_common.testing import serve_app, settings_from_env
from rae_memory.main import MemorySettings, create_app


@pytest.fixture(scope="session")
def memory_settings(infra_env: dict[str, str], ml_url: str) -> MemorySettings:
    return settings_from_env(infra_env, MemorySettings, ml_url=ml_url)


@pytest.fixture
async def client(memory_settings: MemorySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_app(memory_settings)) as c:
        yield c


@pytest.fixture
def tenant() -> dict[str, str]:
    return {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
