"""The gateway in-process against the session's Postgres and Redis, with a real HTTP upstream
standing in for the memory, ml and events services."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from rae_common.auth import issue_token
from rae_common.testing import LoopbackHTTPServer, QuietHandler, serve_app, settings_from_env
from rae_gateway.main import GatewaySettings, create_app

SECRET = "gateway-test-secret-" + "s" * 40
ADMIN_TOKEN = "gateway-test-admin-" + "a" * 40
DOWN = "http://127.0.0.1:9"  # nothing listens there


@dataclass(frozen=True)
class Received:
    method: str
    target: str  # path and query string, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes


class Upstream:
    """A real HTTP server recording every request; answers 201 to POSTs, 204 to DELETEs of one
    memory, 200 otherwise, with a small JSON body."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        upstream = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                upstream.requests.append(
                    Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                path = self.path.partition("?")[0]
                if self.command == "DELETE" and path.startswith("/v1/memories/"):
                    self.send_response(204)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                payload = json.dumps({"upstream": "ok", "path": path}).encode()
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self._http = LoopbackHTTPServer(Handler)

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def last(self) -> Received:
        assert self.requests, "nothing reached the upstream"
        return self.requests[-1]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_settings(infra_env: dict[str, str], upstream: Upstream) -> Callable[..., GatewaySettings]:
    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "jwt_secret": SECRET,
            "rae_admin_token": ADMIN_TOKEN,
            **{f"{s}_url": DOWN for s in ("graph", "reflection", "cost")},
            **{f"{s}_url": upstream.url for s in ("memory", "ml", "events")},
        }
        values.update(overrides)
        return settings_from_env(infra_env, GatewaySettings, **values)

    return make


@pytest.fixture
async def gateway(make_settings: Callable[..., GatewaySettings]) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_app(make_settings())) as client:
        yield client


@pytest.fixture
def bearer() -> Callable[..., dict[str, str]]:
    def make(*scopes: str, tenant: str | None = None) -> dict[str, str]:
        token = issue_token(
            SECRET, subject="agent", tenant_id=tenant or f"t-{uuid.uuid4().hex[:10]}", scopes=scopes
        )
        return {"Authorization": f"Bearer {token}"}

    return make


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class AdminApi:
    """Short calls to the admin API with RAE_ADMIN_TOKEN."""

    headers = ADMIN

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def tenant(self, **limits: int) -> str:
        tenant_id = f"t-{uuid.uuid4().hex[:10]}"
        response = await self.client.post(
            "/v1/admin/tenants", json={"id": tenant_id, "limits": limits}, headers=ADMIN
        )
        assert response.status_code == 201, response.text
        return tenant_id

    async def key(self, tenant_id: str, *scopes: str) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/admin/tenants/{tenant_id}/api-keys", json={"name": "test", "scopes": scopes}, headers=ADMIN
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def set_limits(self, tenant_id: str, **limits: int | None) -> dict[str, Any]:
        response = await self.client.put(f"/v1/admin/tenants/{tenant_id}/limits", json=limits, headers=ADMIN)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def admin(gateway: httpx.AsyncClient) -> AdminApi:
    return AdminApi(gateway)


@pytest.fixture
def admin_api() -> type[AdminApi]:
    """For tests that run their own gateway: `admin_api(client)`."""
    return AdminApi
