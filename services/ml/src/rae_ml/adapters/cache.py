"""Redis cache of vectors, keyed by model and content hash; values are little-endian float32."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rae_ml.domain.embeddings import CacheUnavailable

__all__ = ["RedisVectorCache"]

_FLOAT32 = np.dtype("<f4")


class RedisVectorCache:
    def __init__(self, client: aioredis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    async def get_many(self, keys: Sequence[str]) -> list[list[float] | None]:
        """One round trip (MGET) for every key; None where nothing is cached."""
        if not keys:
            return []
        try:
            blobs = await self.client.mget(list(keys))
        except RedisError as exc:
            raise CacheUnavailable(str(exc)) from exc
        # The client does not decode responses: a value is bytes or absent.
        return [_decode(blob) if isinstance(blob, bytes) else None for blob in blobs]

    async def put_many(self, vectors: Mapping[str, Sequence[float]]) -> None:
        """Write every vector with the TTL in one pipelined round trip."""
        if not vectors:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, vector in vectors.items():
                    pipe.set(key, _encode(vector), ex=self.ttl_s)
                await pipe.execute()
        except RedisError as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def delete_many(self, keys: Sequence[str]) -> int:
        """One DEL for every key; the number that existed."""
        if not keys:
            return 0
        try:
            removed: int = await self.client.delete(*keys)
        except RedisError as exc:
            raise CacheUnavailable(str(exc)) from exc
        return removed


def _encode(vector: Sequence[float]) -> bytes:
    return np.asarray(vector, dtype=_FLOAT32).tobytes()


def _decode(blob: bytes) -> list[float]:
    vector: list[float] = np.frombuffer(blob, dtype=_FLOAT32).tolist()
    return vector
