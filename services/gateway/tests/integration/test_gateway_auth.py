"""Gateway edge behaviour against its real dependencies (Postgres, Redis)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from rae_common.auth import issue_token
from rae_common.testing import serve_app, settings_from_env
from rae_gateway.main import GatewaySettings, create_app

SECRET = "gateway-test-secret-" + "s" * 40


@pytest.fixture
async def client(infra_env: dict[str, str]):
    # Nothing listens on port 9 here: every upstream is down.
    down = "http://127.0.0.1:9"
    settings = settings_from_env(
        infra_env,
        GatewaySettings,
        jwt_secret=SECRET,
        **{f"{s}_url": down for s in ("memory", "ml", "graph", "reflection", "cost", "events")},
    )
    async with serve_app(create_app(settings)) as c:
        yield c


def bearer(*scopes: str, tenant: str = "acme", secret: str = SECRET, ttl: int = 300) -> dict[str, str]:
    token = issue_token(secret, subject="agent", tenant_id=tenant, scopes=scopes, ttl_s=ttl)
    return {"Authorization": f"Bearer {token}"}


async def test_no_credential_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/memories", json={"content": "x"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"].endswith("/unauthenticated")


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not.a.jwt",
        "Bearer " + jwt.encode({"sub": "a", "tenant_id": "t", "exp": int(time.time()) + 60}, "wrong-" * 10),
    ],
)
async def test_bad_credentials_are_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/v1/status", headers={"Authorization": header})
    assert response.status_code == 401
    assert "error=" in response.headers["www-authenticate"]


async def test_expired_token_is_401(client: httpx.AsyncClient) -> None:
    token = issue_token(SECRET, subject="a", tenant_id="t", scopes=["admin"], ttl_s=1, now=time.time() - 100)
    response = await client.get("/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_missing_scope_is_403_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/memories", json={"content": "x"}, headers=bearer("memories:read"))
    assert response.status_code == 403
    assert response.json()["required_scope"] == "memories:write"


async def test_service_down_is_503_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/memories", json={"content": "x"}, headers=bearer("memories:write"))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["service"] == "memory"
    assert response.headers["retry-after"]


async def test_status_reports_every_service_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/status", headers=bearer())
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is False
    assert set(body["services"]) == {"memory", "ml", "graph", "reflection", "cost", "events"}


async def test_gateway_itself_is_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"kafka-topics": "ok", "postgres": "ok", "redis": "ok"}


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/v1/status", "The bearer token is not accepted: token is not a well-formed JWT."),
        (
            "/v1/admin/tenants",
            "The bearer token is neither the platform admin token nor an accepted JWT: "
            "token is not a well-formed JWT.",
        ),
    ],
)
@pytest.mark.parametrize("token", ["not-the-admin-token", "a.b", "x.y.z", "....."])
async def test_a_malformed_token_is_401_in_our_own_words(
    client: httpx.AsyncClient, path: str, detail: str, token: str
) -> None:
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="rae", error="invalid_token"'
    problem = response.json()
    assert problem["type"].endswith("/invalid-token")
    assert problem["detail"] == detail
