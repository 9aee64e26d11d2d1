"""`rae-smoke`: after a deploy, check that the suite answers and that a memory makes the round trip.

Through the gateway only, as a client would: every service ready (`/v1/status`), then in a
throwaway tenant a memory written, found by hybrid search and seen by the event engine (so the
outbox, Kafka and the consumers work), then erased. The chart's `helm test` Pod runs it; an
operator can run it from anywhere that reaches the gateway, with nothing but Python 3:
`python3 smoke.py --url https://rae.example.com` (RAE_ADMIN_TOKEN in the environment).

Only the standard library, so this file runs on its own, outside the suite's packages. The
throwaway tenant stays (there is no tenant deletion); its memory is erased and its key revoked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SmokeFailure", "main", "run"]

SUBJECT = "rae-smoke"


class SmokeFailure(Exception):
    """A step failed; the message says which and why."""


class _Gateway:
    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s

    def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        url = self._url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        for name, value in {**headers, "Accept": "application/json"}.items():
            request.add_header(name, value)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as answer:  # noqa: S310
                raw = answer.read()
                status = answer.status
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SmokeFailure(f"{method} {url}: {exc}") from exc
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")[:300]

    def expect(self, status: int, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        got, body = self.call(method, path, headers, **kwargs)
        if got != status:
            raise SmokeFailure(f"{method} {path} answered {got}, expected {status}: {body}")
        return body


def _poll(what: str, attempt: Callable[[], bool], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if attempt():
            return
        if time.monotonic() >= deadline:
            raise SmokeFailure(f"{what}: not within {deadline_s:.0f} s")
        time.sleep(0.5)


def run(url: str, admin_token: str, *, say: Callable[[str], None], timeout_s: float = 60.0) -> None:
    """Raise `SmokeFailure` at the first step that fails; `say` hears each step that passed."""
    if not admin_token:
        raise SmokeFailure("no admin token: set RAE_ADMIN_TOKEN or pass --admin-token")
    gateway = _Gateway(url, timeout_s=min(timeout_s, 30.0))
    admin = {"Authorization": f"Bearer {admin_token}"}
    gateway.expect(200, "GET", "/readyz", {})
    say(f"gateway ready at {url}")

    tenant = f"rae-smoke-{uuid.uuid4().hex[:8]}"
    gateway.expect(201, "POST", "/v1/admin/tenants", admin, body={"id": tenant, "name": "RAE smoke check"})
    key = gateway.expect(
        201,
        "POST",
        f"/v1/admin/tenants/{tenant}/api-keys",
        admin,
        body={"name": "smoke", "scopes": ["memories:read", "memories:write", "events:read"]},
    )
    headers = {"X-API-Key": key["key"]}
    try:
        status = gateway.expect(200, "GET", "/v1/status", headers)
        down = sorted(
            name for name, service in status.get("services", {}).items() if not service.get("ready")
        )
        if not status.get("ready") or down:
            raise SmokeFailure(f"/v1/status: not ready: {', '.join(down) or status}")
        say(f"every service ready: {', '.join(sorted(status.get('services', {})))}")

        marker = uuid.uuid4().hex
        created = gateway.expect(
            201,
            "POST",
            "/v1/memories",
            headers,
            body={"content": f"The smoke check left marker {marker} here.", "subject": SUBJECT},
        )
        memory_id = created["id"]
        say(f"memory {memory_id} stored in tenant {tenant}")

        def found() -> bool:
            hits = gateway.expect(200, "POST", "/v1/search/hybrid", headers, body={"query": marker, "k": 5})
            return any(hit.get("id") == memory_id for hit in hits.get("results", []))

        _poll("hybrid search finds the memory", found, timeout_s)
        say("hybrid search finds it")

        def logged() -> bool:
            page = gateway.expect(200, "GET", "/v1/events/log", headers, query={"type": "memory.created"})
            # The tenant is new: its one memory.created is this memory's.
            return bool(page.get("items"))

        _poll("the event engine logs memory.created", logged, timeout_s)
        say("the event engine consumed memory.created (outbox -> Kafka -> events)")
    finally:
        # Best effort: a failed step above is the news, not its clean-up.
        gateway.call("DELETE", "/v1/memories", headers, query={"subject": SUBJECT})
        gateway.call("DELETE", f"/v1/admin/tenants/{tenant}/api-keys/{key['id']}", admin)
    say("smoke memory erased, key revoked")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rae-smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("RAE_URL"), help="the gateway's base URL (RAE_URL)")
    parser.add_argument(
        "--admin-token",
        default=os.environ.get("RAE_ADMIN_TOKEN", ""),
        help="platform admin token (RAE_ADMIN_TOKEN)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per asynchronous step (default 60)"
    )
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url or RAE_URL is required")
    try:
        run(args.url, args.admin_token, timeout_s=args.timeout, say=lambda line: print(f"ok: {line}"))  # noqa: T201
    except SmokeFailure as exc:
        print(f"rae-smoke: FAILED: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print("rae-smoke: passed")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
