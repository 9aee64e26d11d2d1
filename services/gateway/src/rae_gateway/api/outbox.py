"""Platform administration of delivery: publish again what the services' outboxes published."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter
from pydantic import ConfigDict, Field

from rae_common.app import StateDep
from rae_common.contracts.common import TimeWindow
from rae_common.contracts.outbox import OUTBOX_SERVICES, OutboxService
from rae_common.errors import ProblemError
from rae_common.outbox_api import OutboxClient, RepublishFailed
from rae_gateway.api.models import problems
from rae_gateway.api.proxy import service_url
from rae_gateway.api.security import DOCUMENTED_CREDENTIALS, AdminDep

router = APIRouter(
    prefix="/v1/admin/outbox",
    tags=["admin"],
    dependencies=DOCUMENTED_CREDENTIALS,
    responses=problems(401, 403, 422, 503),
)

_log = logging.getLogger("rae.gateway.outbox")


class RepublishRequest(TimeWindow):
    """Events published from `since` (inclusive) to `until` (exclusive), by `services`."""

    model_config = ConfigDict(extra="forbid")

    services: Annotated[list[OutboxService], Field(min_length=1)] = Field(
        default_factory=lambda: list(OUTBOX_SERVICES),
        description="Default: every service with an outbox.",
    )


class RepublishAnswer(TimeWindow):
    requeued: dict[str, int] = Field(description="Events queued again, per service.")


@router.post(
    "/republish",
    response_model=RepublishAnswer,
    summary="Publish again the events of a time range (after a broker lost them).",
)
async def republish(body: RepublishRequest, state: StateDep, actor: AdminDep) -> RepublishAnswer:
    """Each service queues again what it published in the range; consumers handle an event once
    however often it arrives, so publishing again is safe. An open bound reaches the oldest event
    kept (OUTBOX_RETENTION_HOURS) or now."""
    assert state.http is not None
    services = list(dict.fromkeys(body.services))
    clients = [OutboxClient(state.http, name, service_url(state, name)) for name in services]
    answers = await asyncio.gather(
        *(client.republish(body.since, body.until) for client in clients), return_exceptions=True
    )
    requeued: dict[str, int] = {}
    failed: dict[str, str] = {}
    for name, answer in zip(services, answers, strict=True):
        if isinstance(answer, RepublishFailed):
            failed[name] = answer.reason
        elif isinstance(answer, BaseException):
            raise answer
        else:
            requeued[name] = answer
    _log.warning(
        "outbox events published from %s to %s queued again by %s: %s%s",
        body.since or "the oldest kept",
        body.until or "now",
        actor,
        requeued,
        f"; failed: {failed}" if failed else "",
    )
    if failed:
        raise ProblemError(
            503,
            "Some services could not queue their events again: " + ", ".join(sorted(failed)) + ".",
            slug="service-unavailable",
            extensions={
                **body.model_dump(mode="json", include={"since", "until"}),
                "requeued": requeued,
                "failed": failed,
            },
        )
    return RepublishAnswer(since=body.since, until=body.until, requeued=requeued)
