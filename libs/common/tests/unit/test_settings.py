from __future__ import annotations

import pytest

from rae_common.settings import INFRASTRUCTURE, INFRASTRUCTURE_SETTINGS, ServiceSettings, require


def test_environment_overrides_infra_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432/x")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("JWT_SECRET", "s3cret")
    settings = ServiceSettings()
    assert settings.database_url == "postgresql://u@db.example:5432/x"
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.jwt_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("http://a, http://b", ["http://a", "http://b"]), ('["http://c"]', ["http://c"]), ("", [])],
)
def test_cors_origins_accept_csv_or_json(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", raw)
    assert ServiceSettings().app_cors_origins == expected


class _KafkaOnly(ServiceSettings):
    uses = frozenset({"kafka"})


def test_opening_infrastructure_a_service_does_not_declare_fails_with_the_fix() -> None:
    settings = _KafkaOnly()
    require(settings, "kafka")
    with pytest.raises(RuntimeError, match=r"_KafkaOnly opens postgres but declares uses=\['kafka'\]"):
        require(settings, "postgres")


def test_every_shared_setting_belongs_to_one_infrastructure_or_to_every_service() -> None:
    grouped = [name for names in INFRASTRUCTURE_SETTINGS.values() for name in names]
    assert len(grouped) == len(set(grouped)), "a setting listed under two kinds of infrastructure"
    assert set(grouped) <= set(ServiceSettings.model_fields)
    assert set(INFRASTRUCTURE_SETTINGS) == set(INFRASTRUCTURE)


class _Deployed(ServiceSettings):
    uses = frozenset({"postgres", "kafka", "redis"})


def test_a_deployed_service_without_an_infrastructure_address_stops_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAE_ENVIRONMENT", "production")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    with pytest.raises(ValueError, match=r"RAE_ENVIRONMENT=production needs DATABASE_URL, REDIS_URL:"):
        _Deployed()
    monkeypatch.setenv("DATABASE_URL", "postgresql://rae@db/rae")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    assert _Deployed().database_url == "postgresql://rae@db/rae"
    monkeypatch.setenv("RAE_ENVIRONMENT", "local")
    monkeypatch.delenv("DATABASE_URL")
    assert _Deployed().database_url.startswith("postgresql://rae:rae@127.0.0.1")
