import uuid
from datetime import UTC, datetime

from rae_common.db import Where


def test_conditions_bind_their_values_after_the_existing_parameters() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    key = (datetime(2026, 2, 1, tzinfo=UTC), uuid.UUID(int=7))
    where = Where(["tenant-a"])
    where.add("tenant_id = $1")
    where.equals("model", "m1")
    where.equals("provider", None)
    where.window("occurred_at", since, None)
    where.before(("occurred_at", "id"), key)

    assert where.sql() == (
        "tenant_id = $1 AND model = $2 AND occurred_at >= $3 AND (occurred_at, id) < ($4, $5)"
    )
    assert where.params == ["tenant-a", "m1", since, key[0], key[1]]


def test_nothing_given_is_no_condition() -> None:
    where = Where()
    where.equals("status", None)
    where.window("created_at", None, None)
    where.before(("created_at", "id"), None)

    assert where.sql() == "true"
    assert where.params == []
