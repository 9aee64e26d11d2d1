"""`.env.example` documents every setting, with a comment, and nothing that does not exist."""

from __future__ import annotations

from pathlib import Path

from rae_common.settings import ServiceSettings

ENV_EXAMPLE = Path(__file__).resolve().parents[4] / ".env.example"
NOT_SETTINGS = {"RAE_TEST_PORT_OFFSET", "RAE_KEEP_STACK"}
NOT_CONFIGURABLE = {"service_name"}  # fixed by each service


def documented() -> dict[str, bool]:
    """Variable name -> whether a comment line stands right above it (or above its group)."""
    names: dict[str, bool] = {}
    previous = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            names[line.split("=", 1)[0]] = previous.startswith("#") or previous == "variable"
            previous = "variable"
        else:
            previous = line
    return names


def setting_env_names() -> set[str]:
    names = set()
    for field_name, field in ServiceSettings.model_fields.items():
        if field_name in NOT_CONFIGURABLE:
            continue
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else field_name.upper())
    return names


def test_every_setting_is_in_env_example() -> None:
    assert setting_env_names() - set(documented()) == set()


def test_env_example_names_only_real_settings() -> None:
    assert set(documented()) - setting_env_names() - NOT_SETTINGS == set()


def test_every_variable_has_a_comment() -> None:
    assert [name for name, commented in documented().items() if not commented] == []
