"""uvicorn's loggers follow the service's level and keep an access log uvicorn switched off."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import uvicorn

from rae_common.logs import configure_logging

_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    loggers = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in _UVICORN
    }
    yield
    root.handlers[:], root.level = saved
    for name, (handlers, level, propagate) in loggers.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def started_by_uvicorn(access_log: bool) -> None:
    """The logging set-up uvicorn does before it builds the app (`--factory`)."""
    uvicorn.Config("rae_common:__name__", log_level="info", access_log=access_log).configure_logging()


def logged(level: str) -> list[dict]:
    stream = io.StringIO()
    configure_logging("svc", level).setStream(stream)
    logging.getLogger("uvicorn.access").info('127.0.0.1:1 - "POST /v1/search/hybrid HTTP/1.1" 200')
    logging.getLogger("uvicorn.error").warning("a warning")
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_access_lines_follow_the_services_level() -> None:
    started_by_uvicorn(access_log=True)
    lines = logged("INFO")
    assert [(line["logger"], line["level"], line["service"]) for line in lines] == [
        ("uvicorn.access", "INFO", "svc"),
        ("uvicorn.error", "WARNING", "svc"),
    ]
    started_by_uvicorn(access_log=True)
    assert [line["logger"] for line in logged("WARNING")] == ["uvicorn.error"]


def test_an_access_log_switched_off_stays_off() -> None:
    started_by_uvicorn(access_log=False)
    assert [line["logger"] for line in logged("INFO")] == ["uvicorn.error"]
