"""Readiness checks: each names one dependency and answers whether it responds right now."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["CheckResult", "ReadinessCheck", "run_checks"]


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    name: str
    probe: Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    error: str | None = None


async def _run_one(check: ReadinessCheck, timeout_s: float) -> CheckResult:
    try:
        await asyncio.wait_for(check.probe(), timeout=timeout_s)
    except TimeoutError:
        return CheckResult(check.name, False, f"no answer within {timeout_s:g}s")
    except Exception as exc:  # any failure of a probe means "not ready", whatever its type
        return CheckResult(check.name, False, f"{type(exc).__name__}: {exc}"[:300])
    return CheckResult(check.name, True)


async def run_checks(checks: Sequence[ReadinessCheck], timeout_s: float) -> list[CheckResult]:
    return list(await asyncio.gather(*(_run_one(c, timeout_s) for c in checks)))
