"""Process helpers: detached spawning, PID files, liveness, termination."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

# The launcher shell starts the command in the background and prints its PID, then exits.
# The command is therefore re-parented away from the caller (no zombies in a long-lived
# parent such as pytest, no Popen objects to leak) and, because the shell starts a new
# session, it does not share the caller's terminal: Ctrl-C in the parent does not reach it.
# (A background command of a non-interactive shell starts with SIGINT ignored; every server
# here is stopped with SIGTERM, or handles SIGINT itself.)
_LAUNCHER = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


def spawn_detached(
    cmd: Sequence[str],
    *,
    log_file: Path,
    env: Mapping[str, str],
    cwd: Path,
) -> int:
    """Start ``cmd`` detached, stdout+stderr appended to ``log_file``; return its PID."""
    with log_file.open("ab") as log:
        out = subprocess.run(
            ["/bin/sh", "-c", _LAUNCHER, "rae-launch", str(log_file), *cmd],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            check=True,
            timeout=30,
        )
    return int(out.stdout.decode().strip())


def read_pid(pid_file: Path) -> int | None:
    """First line of ``pid_file`` as an int, or None when missing/garbled."""
    try:
        first = pid_file.read_text().splitlines()[0].strip()
        pid = int(first)
    except (OSError, IndexError, ValueError):
        return None
    return pid if pid > 0 else None


def write_pid(pid_file: Path, pid: int) -> None:
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def _reap(pid: int) -> None:
    # If the process happens to be our own child (e.g. spawned without the launcher),
    # collect its exit status so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Format: "pid (comm) S ..."; comm may contain spaces/parentheses.
    rest = stat.rsplit(")", 1)[-1].split()
    return bool(rest) and rest[0] in ("Z", "X")


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a live (non-zombie) process."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    return not _is_zombie(pid)


def pid_matches(pid: int, markers: Iterable[str]) -> bool:
    """True when ``pid`` is alive and (where /proc is available) its command line
    contains every marker — a guard against PID reuse after a reboot or crash."""
    if not pid_alive(pid):
        return False
    cmdline = _cmdline(pid)
    if cmdline is None:
        return True  # no /proc (e.g. macOS): liveness is all we can check
    return all(m in cmdline for m in markers)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.25) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def terminate(
    targets: Sequence[tuple[int, signal.Signals]],
    *,
    grace: float = 10.0,
    kill_wait: float = 5.0,
) -> list[int]:
    """Signal every (pid, signal) pair, wait up to ``grace`` seconds, SIGKILL survivors.

    Returns the PIDs that are still alive afterwards (normally empty)."""
    pending: list[int] = []
    for pid, sig in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            pending.append(pid)
    pending = _wait_gone(pending, grace)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return _wait_gone(pending, kill_wait)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if pid_alive(p)]
    delay = 0.01
    while alive and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def tail(path: Path, lines: int = 40, start: int = 0) -> str:
    """Last ``lines`` lines of ``path`` from byte offset ``start`` (best effort)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            begin = max(start, size - 64 * 1024)
            if begin > size:
                begin = 0
            fh.seek(begin)
            data = fh.read()
    except OSError:
        return "(no log)"
    text = data.decode(errors="replace").splitlines()
    return "\n".join(text[-lines:]) if text else "(log is empty)"


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
