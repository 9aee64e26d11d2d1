"""Checks every route of every service runs before its own validation, registered once by the app
factory: input that no route can serve and no store can hold is a 4xx problem naming the input,
instead of a 500 from the database driver.

- A path segment with a control character (a newline, NUL, DEL...): 422 naming the parameter.
  No identifier holds one, and one in a forwarded URL breaks the HTTP request line.
- NUL in a query parameter, form field or anywhere in a JSON body (keys included): 422 naming
  the field. Postgres cannot store NUL in `text` or `jsonb`.
- A lone surrogate (`\\ud800`) or a non-finite number (`NaN`, `Infinity`) in a JSON body: 422.
  Neither can be written as UTF-8 or as JSON, so neither reaches a store or another service.
- A body sent to a route that reads JSON with another media type, or none: 415, not the
  "Input should be a valid dictionary" a route would answer for bytes it never parsed.

A JSON body is walked only when its bytes hold something to find (an escaped NUL or surrogate, or
a `NaN`/`Infinity` token), so well-formed requests pay a few scans of the bytes they carry (less
than the JSON parse of the same body).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from fastapi.routing import APIRoute

from rae_common.errors import ProblemError

__all__ = ["CHECK_INPUT", "check_input", "text_errors"]

_PATH_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# The escapes json.loads turns into a NUL or a lone surrogate (a pair becomes one code point), and
# the tokens it turns into non-finite floats: when none occurs in the bytes, nothing can be found.
# Searched apart: a literal prefix lets `re` skip ahead, an alternation of all four does not (an
# order of magnitude slower on a large batch body: docs/BENCHMARKS.md, "Ninth pass").
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_NON_FINITE_TOKENS = (b"NaN", b"Infinity")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Loc = tuple[str | int, ...]


def _error(loc: Loc, kind: str, msg: str) -> dict[str, Any]:
    return {"loc": loc, "type": kind, "msg": msg}


def _string_error(value: str, loc: Loc) -> dict[str, Any] | None:
    if "\x00" in value:
        return _error(loc, "string_nul_character", "Text must not contain NUL characters (\\u0000).")
    if _LONE_SURROGATE.search(value):
        return _error(loc, "string_unicode", "Text must not contain unpaired surrogates.")
    return None


def _walk(value: Any, loc: Loc, errors: list[dict[str, Any]]) -> None:
    if isinstance(value, str):
        if (error := _string_error(value, loc)) is not None:
            errors.append(error)
    elif isinstance(value, float):
        if not math.isfinite(value):
            errors.append(_error(loc, "finite_number", "Numbers must be finite (no NaN or Infinity)."))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if (error := _string_error(str(key), (*loc, key, "[key]"))) is not None:
                errors.append(error)
            _walk(item, (*loc, key), errors)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, (*loc, index), errors)


def text_errors(values: Mapping[str, Any], *loc: str) -> list[dict[str, Any]]:
    """Validation errors for values no store can hold (NUL, lone surrogates, NaN), located under
    `loc`; for inputs a route parses itself, such as multipart form fields."""
    errors: list[dict[str, Any]] = []
    _walk(values, loc, errors)
    return errors


def _json_errors(body: bytes) -> list[dict[str, Any]]:
    if not (_SUSPECT_ESCAPE.search(body) or any(token in body for token in _NON_FINITE_TOKENS)):
        return []
    try:
        parsed = json.loads(body)
    except ValueError:
        return []  # not JSON: the route answers that itself
    errors: list[dict[str, Any]] = []
    _walk(parsed, ("body",), errors)
    return errors


def _is_json(media_type: str) -> bool:
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _reads_json(route: object) -> bool:
    return (
        isinstance(route, APIRoute)
        and route.body_field is not None
        and not isinstance(route.body_field.field_info, Form)
    )


async def check_input(request: Request) -> None:
    """See the module: raises a 415 problem or a 422 validation error naming every bad input."""
    errors: list[dict[str, Any]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and _PATH_CONTROL.search(value):
            errors.append(
                _error(("path", name), "string_control_character", "Must not contain control characters.")
            )
    bad_query = {name for name, value in request.query_params.multi_items() if "\x00" in name + value}
    errors.extend(
        _error(("query", name), "string_nul_character", "Text must not contain NUL characters (\\u0000).")
        for name in sorted(bad_query)
    )
    if request.method in _BODY_METHODS:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if _is_json(media_type):
            errors.extend(_json_errors(await request.body()))
        elif _reads_json(request.scope.get("route")) and await request.body():
            raise ProblemError(
                415,
                f"Send the body as application/json (it came as {media_type or 'no media type'}).",
                slug="unsupported-media-type",
            )
    if errors:
        raise RequestValidationError(errors)


# For `FastAPI(dependencies=[CHECK_INPUT])`: it then runs first on every route.
CHECK_INPUT = Depends(check_input)
