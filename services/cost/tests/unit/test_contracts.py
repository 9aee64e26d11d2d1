"""The cost API contract refuses what the service could not honour, and cursors are opaque."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import TypeAdapter, ValidationError

from rae_common.contracts.cost import BudgetIn, CostLogQuery, TenantId
from rae_common.errors import ProblemError
from rae_common.paging import decode_cursor, encode_cursor


def test_a_budget_takes_nulls_as_unlimited_and_money_as_decimals() -> None:
    budget = BudgetIn.model_validate_json('{"daily_tokens": 1000, "monthly_usd": 12.3, "daily_usd": null}')
    assert budget.monthly_usd == Decimal("12.3")
    assert (budget.monthly_tokens, budget.daily_usd, budget.warn_ratio) == (None, None, None)
    assert BudgetIn.model_validate({"warn_ratio": 1}).warn_ratio == 1


@pytest.mark.parametrize(
    "body",
    [
        {"daily_tokens": -1},
        {"monthly_usd": -0.01},
        {"daily_usd": "NaN"},
        {"daily_usd": "Infinity"},
        {"daily_tokens": 1.5},
        {"daily_tokens": 10**16},
        {"warn_ratio": 0},
        {"warn_ratio": 1.01},
        {"warn_ratio": -0.5},
        {"monthly_usd": 0.00000000001},
        {"daily_tokens": 10, "hourly_tokens": 1},
    ],
)
def test_a_budget_refuses_negative_odd_or_unknown_values(body: dict) -> None:
    with pytest.raises(ValidationError):
        BudgetIn.model_validate(body)


def test_log_filters_read_times_without_offset_as_utc_and_refuse_an_inverted_range() -> None:
    query = CostLogQuery.model_validate({"since": "2024-05-01T00:00:00"})
    assert query.since == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="after"):
        CostLogQuery.model_validate({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"})
    for limit in (0, 501):
        with pytest.raises(ValidationError):
            CostLogQuery.model_validate({"limit": limit})


@pytest.mark.parametrize("value", ["", "-lead", "has space", "x" * 65, "ünï"])
def test_tenant_ids_follow_the_suite_rule(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(TenantId).validate_python(value)


def test_cursors_round_trip_and_anything_else_is_a_422() -> None:
    assert decode_cursor(encode_cursor("2024-05-01T00:00:00+00:00", "id"), 2) == [
        "2024-05-01T00:00:00+00:00",
        "id",
    ]
    forged = [
        "not base64 !",
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(b'["one"]').decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "ünï",
    ]
    for cursor in forged:
        with pytest.raises(ProblemError) as caught:
            decode_cursor(cursor, 2)
        assert (caught.value.status, caught.value.slug) == (422, "invalid-cursor")
