"""Pieces several API contracts share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, model_validator

__all__ = ["TimeWindow", "UtcDatetime"]


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
