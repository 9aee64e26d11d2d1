"""Test helpers for a service run as the local stack runs it (a uvicorn process), and for a
dependency that takes requests and never answers them: what shutdown tests need."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from rae_common.testing import LoopbackHTTPServer, QuietHandler

__all__ = ["ServiceProcess", "SilentServer", "free_port", "service_process", "silent_server"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class SilentServer:
    """`url` takes every GET and POST and answers none (until the server stops); `asked` is set
    at the first request, `methods` lists each request's method."""

    url: str
    asked: threading.Event
    methods: list[str]


@contextlib.contextmanager
def silent_server() -> Iterator[SilentServer]:
    asked = threading.Event()
    release = threading.Event()
    methods: list[str] = []

    class Silent(QuietHandler):
        def _hang(self) -> None:
            methods.append(self.command)
            asked.set()
            release.wait(timeout=120)

        do_GET = _hang
        do_POST = _hang

    server = LoopbackHTTPServer(Silent)
    server.start()
    try:
        yield SilentServer(server.url, asked, methods)
    finally:
        release.set()
        server.stop()


@dataclass(frozen=True)
class ServiceProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    async def stop_within(self, grace_s: float) -> float | None:
        """SIGTERM, then the seconds the process took to exit; None when it is still running
        `grace_s` later (the caller then fails: the local stack would have killed it)."""
        signalled = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        deadline = signalled + grace_s
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return time.monotonic() - signalled if self.process.poll() is not None else None


@contextlib.contextmanager
def service_process(app_factory: str, env: Mapping[str, str], log: Path) -> Iterator[ServiceProcess]:
    """`app_factory` ("rae_graph.main:create_app") under uvicorn on a free port, with `env` over
    this process' environment, output to `log`; killed at the end if still running."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app_factory, "--factory", "--no-access-log"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield ServiceProcess(process, f"http://127.0.0.1:{port}", log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
