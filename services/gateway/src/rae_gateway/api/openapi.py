"""Additions to the generated OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

__all__ = ["document_models"]


def document_models(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Put `models` in `components.schemas`: for bodies a route describes by `$ref` in
    `openapi_extra` (FastAPI only collects the models of declared parameters and responses)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        _, defs = models_json_schema(
            [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
        )
        known = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in defs.get("$defs", {}).items():
            known.setdefault(name, definition)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
