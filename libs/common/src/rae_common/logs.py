"""JSON logs on stdout, each record carrying the current trace_id, span_id and request id."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from rae_common.middleware import current_request_id

__all__ = ["TraceContextFilter", "configure_logging"]

_HANDLER_NAME = "rae-json"


class TraceContextFilter(logging.Filter):
    """Stamp each record with the active span's ids so logs join traces."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else None
        record.request_id = current_request_id()
        record.service = self.service_name
        return True


def configure_logging(service_name: str, level: str = "INFO") -> logging.Handler:
    """Replace the root handlers with one JSON handler; returns it (tests attach a stream)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    )
    handler.addFilter(TraceContextFilter(service_name))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler (a second app in one process, or a restart), not others'.
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers would print plain text; route them through the JSON handler, at the
    # service's level (uvicorn gives them its own). An access logger uvicorn switched off
    # (`--no-access-log`: no handler, not propagating) stays off.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        switched_off = name == "uvicorn.access" and not logger.handlers and not logger.propagate
        logger.handlers.clear()
        logger.setLevel(level.upper())
        logger.propagate = not switched_off
    return handler
