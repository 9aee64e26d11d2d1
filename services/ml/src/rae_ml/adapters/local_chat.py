"""The offline `local` chat provider: the extractive selection, run off the event loop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from rae_ml.domain.extractive import TokenCounter, extractive_completion
from rae_ml.domain.generation import LOCAL_PROVIDER, ChatCall, Completion

__all__ = ["LocalChatProvider"]

# Stream chunks end after a sentence's closing punctuation and the space that follows it.
_SENTENCE_CHUNK = re.compile(r".+?(?:[.!?][\"')\]]*(?:\s+|$)|$)", re.DOTALL)


class LocalChatProvider:
    name = LOCAL_PROVIDER

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    async def complete(self, call: ChatCall) -> Completion:
        # Tokenizing and scoring a long conversation takes CPU time: not on the event loop.
        return await asyncio.to_thread(extractive_completion, call, self.counter)

    async def open_stream(self, call: ChatCall) -> ReplayStream:
        return ReplayStream(await self.complete(call))


class ReplayStream:
    """A finished completion handed out sentence by sentence; counts are final only once the
    whole text was handed out."""

    def __init__(self, completion: Completion) -> None:
        self._completion = completion
        self.notice = completion.notice
        self.prompt_tokens = completion.prompt_tokens
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        for match in _SENTENCE_CHUNK.finditer(self._completion.content):
            if match[0]:
                yield match[0]
        self.completion_tokens = self._completion.completion_tokens
        self.finish_reason = self._completion.finish_reason

    async def aclose(self) -> None:
        return None
