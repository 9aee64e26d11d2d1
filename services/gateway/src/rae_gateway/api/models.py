"""Models of the public routes that `rae_common.contracts` does not hold (yet), the parsing of
the ingestion body, and the problem responses every route documents."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError
from starlette.datastructures import UploadFile

from rae_common.contracts.memory import IngestText, Layer, Tag
from rae_common.errors import ProblemError
from rae_common.input_checks import text_errors

__all__ = [
    "IngestForm",
    "Problem",
    "SuiteStatus",
    "problems",
    "validate_ingest_body",
]


class Problem(BaseModel):
    """RFC 9457 problem details; routes add fields such as `required_scope` or `limit_name`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://rae.dev/problems/rate-limited"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


_PROBLEM_DESCRIPTIONS = {
    401: "No credential, or a bad, expired or revoked one (`WWW-Authenticate: Bearer`).",
    402: "The tenant's token or USD budget is spent (`period`, `metric`, `limit`, `used`, `Retry-After`).",
    403: "The credential lacks the scope the route needs (`required_scope` names it).",
    404: "No such resource for this tenant.",
    409: "The resource already exists.",
    413: "The request body is larger than MAX_BODY_BYTES.",
    415: "The request body has a media type this route does not take.",
    422: "The request is not valid (`errors[].loc/msg/type`).",
    429: "A rate limit is exhausted (`limit_name`, `Retry-After`, `X-RateLimit-*`); on budget-guarded "
    "routes also `budget-reserved`: the budget is held by requests in flight (short `Retry-After`).",
    503: "The service behind the route is unavailable.",
}


_QUOTA_HEADERS = {
    "X-RateLimit-Limit": "Requests per minute allowed in this route's bucket.",
    "X-RateLimit-Remaining": "Requests left in the current sliding minute.",
    "X-RateLimit-Reset": "Seconds until Remaining grows again.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problem documents."""
    entries: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status == 429:
            entry["headers"] = {
                name: {"description": text, "schema": {"type": "integer"}}
                for name, text in {"Retry-After": "Seconds to wait.", **_QUOTA_HEADERS}.items()
            }
        entries[status] = entry
    return entries


class ServiceStatus(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(default_factory=dict, description="What its /readyz reported per check.")
    error: str | None = Field(default=None, description="Why it could not be asked.")


class SuiteStatus(BaseModel):
    tenant_id: str
    ready: bool
    services: dict[str, ServiceStatus]


class IngestForm(BaseModel):
    """The form fields of a multipart ingestion, beside `file` (as the memory service reads them)."""

    model_config = ConfigDict(extra="forbid")

    layer: Layer = Layer.SEMANTIC
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    subject: str | None = Field(default=None, max_length=200)
    metadata: Json[dict[str, Any]] | None = None


INGEST_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The document."},
                        "layer": {"$ref": "#/components/schemas/Layer"},
                        "tags": {"type": "string", "description": "Comma-separated tags."},
                        "subject": {"type": "string", "maxLength": 200},
                        "metadata": {"type": "string", "description": "A JSON object."},
                    },
                    "additionalProperties": False,
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/IngestText"}},
        },
    }
}


def _invalid(exc: ValidationError, *prefix: str) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors(include_input=False)]
    )


async def validate_ingest_body(request: Request) -> None:
    """Check an ingestion body (multipart with `file`, or JSON `IngestText`) before forwarding."""
    body = await request.body()  # cached first, so the form parser reads it and it can still be sent
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "application/json":
        try:
            IngestText.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid(exc, "body") from exc
        return
    if media_type != "multipart/form-data":
        raise ProblemError(
            415, "Send the document as multipart/form-data (field 'file') or JSON text (IngestText)."
        )
    async with request.form(max_files=1, max_fields=10) as form:
        if not isinstance(form.get("file"), UploadFile):
            raise RequestValidationError(
                [{"loc": ("body", "file"), "msg": "A file part named 'file' is required.", "type": "missing"}]
            )
        fields: dict[str, Any] = {k: v for k, v in form.multi_items() if k != "file"}
        if isinstance(fields.get("tags"), str):
            fields["tags"] = [tag.strip() for tag in fields["tags"].split(",") if tag.strip()]
        try:
            form_fields = IngestForm.model_validate(fields)
        except ValidationError as exc:
            raise _invalid(exc, "body") from exc
        # The route reads the form itself, so the app-wide input check has not seen these fields.
        if errors := text_errors(form_fields.model_dump(exclude_unset=True), "body"):
            raise RequestValidationError(errors)
