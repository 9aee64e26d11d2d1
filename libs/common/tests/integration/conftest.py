from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from rae_common.db import create_pool
from rae_common.settings import ServiceSettings


@pytest.fixture
async def pool(settings: ServiceSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def schema(pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A throwaway schema per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    await pool.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
