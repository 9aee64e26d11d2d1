"""The internal API to publish outbox events again, on every service that owns an outbox, and
its typed client (the gateway's admin route and operators use it)."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import httpx
from fastapi import APIRouter

from rae_common.app import StateDep
from rae_common.contracts.outbox import REPUBLISH_PATH, Republish, Republished
from rae_common.errors import DependencyUnavailable
from rae_common.outbox import OutboxRelay

__all__ = ["OutboxClient", "RepublishFailed", "router"]

router = APIRouter(tags=["outbox"])


@router.post(REPUBLISH_PATH, response_model=Republished, summary="Publish again the events of a time range.")
async def republish(body: Republish, state: StateDep) -> Republished:
    """Queue again what this service published from `since` to `until`, for consumers that lost
    it (a broker that lost its log); their inboxes ignore what they already handled."""
    relay: OutboxRelay = state.get("relay")
    try:
        requeued = await relay.republish(body.since, body.until)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DependencyUnavailable("The outbox cannot be read right now.", dependency="postgres") from exc
    return Republished(
        service=state.settings.service_name, since=body.since, until=body.until, requeued=requeued
    )


class RepublishFailed(Exception):
    """The service was unreachable, timed out, or did not answer 200."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"the {service} service: {reason}")
        self.service = service
        self.reason = reason


class OutboxClient:
    def __init__(self, http: httpx.AsyncClient, service: str, service_url: str) -> None:
        self.http = http
        self.service = service
        self.url = service_url.rstrip("/") + REPUBLISH_PATH

    async def republish(self, since: datetime | None, until: datetime | None) -> int:
        """How many events the service queued again."""
        body = Republish(since=since, until=until)
        try:
            response = await self.http.post(
                self.url,
                content=body.model_dump_json(),
                headers={"content-type": "application/json"},
                timeout=httpx.Timeout(60.0, connect=2.0),
            )
        except httpx.TransportError as exc:
            raise RepublishFailed(self.service, f"unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise RepublishFailed(self.service, f"answered {response.status_code}")
        return Republished.model_validate_json(response.content).requeued
