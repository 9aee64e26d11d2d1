"""`rae-serve`: the command every image and the chart start a service with."""

from __future__ import annotations

import pytest

from rae_common.serve import DEFAULT_PORTS, ServeSettings, main
from rae_localstack._stack import BASE_PORTS


def test_the_environment_names_the_service_and_where_it_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAE_SERVICE", "memory")
    settings = ServeSettings()  # type: ignore[call-arg]
    assert (settings.rae_host, settings.port) == ("0.0.0.0", DEFAULT_PORTS["memory"])
    monkeypatch.setenv("RAE_PORT", "9101")
    monkeypatch.setenv("RAE_HOST", "127.0.0.1")
    settings = ServeSettings()  # type: ignore[call-arg]
    assert (settings.rae_host, settings.port) == ("127.0.0.1", 9101)


def test_a_wrong_environment_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAE_SERVICE", "billing")
    assert main() == 2
    assert "rae-serve: RAE_SERVICE: Input should be 'gateway'" in capsys.readouterr().err
    monkeypatch.setenv("RAE_SERVICE", "ml")
    monkeypatch.setenv("RAE_PORT", "70000")
    assert main() == 2
    assert "RAE_PORT" in capsys.readouterr().err


def test_the_local_stack_runs_each_service_on_its_default_port() -> None:
    # The stack manager runs without the suite's libraries, so it keeps its own table.
    assert {name: BASE_PORTS[name] for name in DEFAULT_PORTS} == dict(DEFAULT_PORTS)
