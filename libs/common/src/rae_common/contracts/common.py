"""Pieces several API contracts share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, model_validator

__all__ = ["MAX_CONTENT_CHARS", "TimeWindow", "UtcDatetime"]

# The longest text a memory holds and the ml service embeds, in characters: one limit for every
# service on the path (gateway, memory, ml), so content is refused up front with a 422 naming the
# field instead of being accepted by one service and refused by the next. Longer text is ingested
# as a document (`POST /v1/memories/ingest`), which is chunked well below it.
MAX_CONTENT_CHARS = 20_000


def _utc(value: datetime) -> datetime:
    # A time without an offset is read as UTC, as every time this API answers is.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class TimeWindow(BaseModel):
    """A query's `since` (inclusive) .. `until` (exclusive); subclasses declare both fields."""

    since: UtcDatetime | None = None
    until: UtcDatetime | None = None

    @model_validator(mode="after")
    def _span(self) -> Self:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be after until")
        return self
