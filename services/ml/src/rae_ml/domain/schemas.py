"""JSON Schema checks of structured output (jsonschema, Draft 2020-12 unless `$schema` says
otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import exceptions as schema_errors  # type: ignore[import-untyped]
from jsonschema import validators

from rae_ml.domain.generation import InvalidSchema

__all__ = ["check_schema", "validation_error"]


def check_schema(schema: dict[str, Any]) -> None:
    """Raises InvalidSchema when `schema` is not a valid JSON Schema, or refers outside itself
    (nothing is fetched: a remote `$ref` could never resolve)."""
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except schema_errors.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise InvalidSchema(f"json_schema is not a valid JSON Schema at {where}: {exc.message}") from exc
    remote = next(_remote_refs(schema), None)
    if remote is not None:
        raise InvalidSchema(f"json_schema may only refer to itself (`#/...`), not to {remote!r}")


def _remote_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
                yield value
            else:
                yield from _remote_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _remote_refs(item)


def validation_error(schema: dict[str, Any], value: Any) -> str | None:
    """Why `value` does not validate against `schema` (the most relevant error), or None."""
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    error = schema_errors.best_match(cls(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"[:500]
