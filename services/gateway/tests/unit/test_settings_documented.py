"""Every gateway setting is documented, with a comment, in the gateway block of `.env.example`."""

from __future__ import annotations

from pathlib import Path

from rae_common.settings import ServiceSettings
from rae_gateway.main import GatewaySettings

ENV_EXAMPLE = Path(__file__).resolve().parents[4] / ".env.example"


def gateway_block() -> list[str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# --- gateway"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# ---")), len(lines))
    return lines[start + 1 : end]


def test_every_gateway_setting_is_in_its_block_with_a_comment() -> None:
    own = {name.upper() for name in GatewaySettings.model_fields} - {
        name.upper() for name in ServiceSettings.model_fields
    }
    block = gateway_block()
    documented = {}
    for i, line in enumerate(block):
        if line and not line.startswith("#"):
            documented[line.split("=", 1)[0]] = i > 0 and block[i - 1].startswith("#")
    assert set(documented) == own
    assert all(documented.values())


def test_the_documented_values_are_the_defaults() -> None:
    values = dict(line.split("=", 1) for line in gateway_block() if line and not line.startswith("#"))
    defaults = GatewaySettings(_env_file=None)
    for name, value in values.items():
        assert str(getattr(defaults, name.lower())).removesuffix(".0") == value, name
