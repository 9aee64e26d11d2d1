"""`.env.example` documents every setting of every service, with a comment, and nothing else."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from rae_common.settings import ServiceSettings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
SERVICES = ("gateway", "memory", "ml", "graph", "reflection", "cost", "events")
STACK_ONLY = {"RAE_TEST_STATE_DIR", "RAE_TEST_PORT_OFFSET", "RAE_KEEP_STACK"}
NOT_CONFIGURABLE = {"service_name"}  # fixed by each service


def settings_classes() -> dict[str, type[BaseSettings]]:
    classes: dict[str, type[BaseSettings]] = {"common": ServiceSettings}
    for name in SERVICES:
        module = importlib.import_module(f"rae_{name}.main")
        for value in vars(module).values():
            is_settings = isinstance(value, type) and issubclass(value, ServiceSettings)
            if is_settings and value is not ServiceSettings:
                classes[name] = value
    return classes


def env_name(cls: type[BaseSettings], field: str) -> str:
    alias = cls.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field.upper()


def documented() -> dict[str, tuple[str, bool]]:
    """Variable -> (value, whether a comment stands above it or above its group)."""
    names: dict[str, tuple[str, bool]] = {}
    previous = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            names[name] = (value, previous.startswith("#") or previous == "variable")
            previous = "variable"
        else:
            previous = line
    return names


def all_settings() -> set[str]:
    return {
        env_name(cls, field)
        for cls in settings_classes().values()
        for field in cls.model_fields
        if field not in NOT_CONFIGURABLE
    }


def test_every_service_defines_its_settings_class() -> None:
    assert set(settings_classes()) == {"common", *SERVICES}


def test_every_setting_is_documented() -> None:
    assert all_settings() - set(documented()) == set()


def test_only_real_settings_are_documented() -> None:
    assert set(documented()) - all_settings() - STACK_ONLY == set()


def test_every_variable_has_a_comment() -> None:
    assert [name for name, (_, commented) in documented().items() if not commented] == []


@pytest.mark.parametrize("service", SERVICES)
def test_documented_values_of_service_settings_are_their_defaults(service: str) -> None:
    cls = settings_classes()[service]
    docs = documented()
    own = set(cls.model_fields) - set(ServiceSettings.model_fields)
    defaults = cls(_env_file=None)  # type: ignore[call-arg]
    for field in own:
        value = getattr(defaults, field)
        if isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = "" if value is None else str(value).removesuffix(".0")
        assert docs[env_name(cls, field)][0] == shown, field
