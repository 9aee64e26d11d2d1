"""Stopping a background task (a Kafka consumer loop, the outbox relay) within a bound.

A stopping service has a grace period before it is killed (the local stack's, Kubernetes'
`terminationGracePeriodSeconds`); a task finishing the work in hand must not outlast it. The
work is cancelled at the deadline, which is safe for tasks that commit their effects only once
they are done: what was cancelled is done again later (a record is delivered again, an outbox
row published again; the inboxes make that harmless).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["CANCEL_WAIT_S", "BackgroundLoop", "stop_task"]

_log = logging.getLogger("rae.background")

#: How long a cancelled task gets to unwind (roll back, leave its consumer group, close its
#: connections): milliseconds when its servers answer; a task still running after it waits on
#: one that does not, and is left to the event loop's own cancellation at exit.
CANCEL_WAIT_S = 1.0


async def stop_task(task: asyncio.Task[Any], deadline: float, *, name: str) -> None:
    """Wait for `task` (already asked to stop) until `deadline` (`loop.time()`), then cancel it
    and wait at most `CANCEL_WAIT_S` more. Its exception, if any, is logged, not raised: the
    caller is shutting down. A cancellation of the caller cancels the task too and goes on."""
    loop = asyncio.get_running_loop()
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            _log.warning("%s did not finish the work in hand in time; cancelling it", name)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
            if not done:
                _log.error("%s still running %g s after it was cancelled; leaving it", name, CANCEL_WAIT_S)
                return
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.cancelled() and (error := task.exception()) is not None:
        _log.error("%s failed: %s: %s", name, type(error).__name__, error)


class BackgroundLoop:
    """A task that runs `_run` until asked to stop, and stops within `stop_timeout_s` of that.

    `request_stop` (registered with `ServiceState.on_shutdown`, so every loop of a service is asked
    at once when it starts shutting down) sets `_stopping` and the deadline; `stop` waits for the
    work in hand until then and cancels it at the deadline (`stop_task`)."""

    def __init__(self, *, task_name: str, stop_timeout_s: float) -> None:
        self.task_name = task_name
        self.stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        self._stop_deadline: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    def request_stop(self) -> None:
        """Take no new work; the work in hand has `stop_timeout_s` from now to finish."""
        if self._stop_deadline is None:
            self._stop_deadline = asyncio.get_running_loop().time() + self.stop_timeout_s
        self._stopping.set()

    async def stop(self) -> None:
        """Finish the work in hand; cancel it at the deadline (`request_stop`'s, or
        `stop_timeout_s` from now)."""
        self.request_stop()
        if self._task is not None:
            assert self._stop_deadline is not None
            await stop_task(self._task, self._stop_deadline, name=self.task_name)
            self._task = None
