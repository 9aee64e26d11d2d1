"""The stack's command line as a shell uses it: the offset and state dir settings, `env --export`
followed by more commands in the same shell, and `make demo`. Nothing here starts a server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rae_localstack import BASE_PORTS, EXTERNAL_VARS, INFRA, Stack

ROOT = Path(__file__).resolve().parents[3]
PY = shlex.quote(sys.executable)
# What a Stack in the shell makes of its environment: which servers it takes as external, and the
# environment it would give the services.
INSPECT = (
    "import json, os, sys; from pathlib import Path; from rae_localstack import INFRA, Stack; "
    "s = Stack(Path(sys.argv[1]), port_offset=int(sys.argv[2])); "
    "print(json.dumps({'external': [c for c in INFRA if s.is_external(c)], 'env': s.service_env()}))"
)


def _clean_env(**extra: str) -> dict[str, str]:
    """This process' environment without anything that would name a server or a stack."""
    names = {*EXTERNAL_VARS.values(), "QDRANT_URL", "JWT_SECRET", "RAE_ADMIN_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("RAE_LOCAL")}
    return {**env, **extra}


def _shell(script: str, **extra: str) -> str:
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{script}"],
        env=_clean_env(**extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _export(state_dir: Path, offset: int) -> str:
    return f'eval "$({PY} -m rae_localstack --state-dir {state_dir} --port-offset {offset} env --export)"\n'


def _inspect(state_dir: Path, offset: int) -> str:
    return f"{PY} -c {shlex.quote(INSPECT)} {state_dir} {offset}\n"


@pytest.fixture
def two_stacks(tmp_path: Path, sub_stack_offset) -> tuple[tuple[Path, int], tuple[Path, int]]:
    """(state dir, offset) of a "developer" stack whose environment is exported, and of another."""
    return (tmp_path / "dev", sub_stack_offset("localstack-idle")), (
        tmp_path / "test",
        sub_stack_offset("localstack-external"),
    )


def test_after_eval_env_export_the_same_shell_runs_its_own_servers(two_stacks) -> None:
    (dev, dev_offset), (other, other_offset) = two_stacks
    script = _export(dev, dev_offset) + _inspect(other, other_offset) + _inspect(dev, dev_offset)
    lines = _shell(script).splitlines()
    # `make test` in that shell: its stack is not pointed at the exported (developer) servers...
    seen = json.loads(lines[0])
    assert seen["external"] == []
    assert seen["env"] == Stack(other, port_offset=other_offset, env={}).service_env()
    # ...and `make up` again (e.g. after `make down`) starts the servers instead of waiting on them.
    assert json.loads(lines[1])["external"] == []
    status = _shell(
        _export(dev, dev_offset) + f"{PY} -m rae_localstack --state-dir {dev} --port-offset {dev_offset} "
        "status --infra-only\n"
    )
    states = {row.split()[0]: row.split()[2] for row in status.splitlines()[1:]}
    assert states == dict.fromkeys(INFRA, "down")


def test_a_url_set_by_hand_still_names_an_external_server(two_stacks) -> None:
    (dev, dev_offset), (other, other_offset) = two_stacks
    database = "postgresql://app:pw@db.example:5432/rae"
    redis = "redis://cache.example:6379/0"
    script = (
        f"export REDIS_URL={redis}\n"  # before the eval: the export passes it through
        + _export(dev, dev_offset)
        + f"export DATABASE_URL={shlex.quote(database)}\n"  # after the eval: replaces the stack's own
        + _inspect(other, other_offset)
    )
    seen = json.loads(_shell(script))
    assert sorted(seen["external"]) == ["postgres", "redis"]
    assert (seen["env"]["DATABASE_URL"], seen["env"]["REDIS_URL"]) == (database, redis)
    assert seen["env"]["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{BASE_PORTS['kafka'] + other_offset}"


def test_the_command_line_takes_the_offset_and_state_dir_from_the_environment(
    tmp_path: Path, sub_stack_offset
) -> None:
    offset = sub_stack_offset("localstack-idle")
    out = _shell(
        f"{PY} -m rae_localstack env\n",
        RAE_LOCAL_PORT_OFFSET=str(offset),
        RAE_LOCAL_STATE_DIR=str(tmp_path / "dev"),
    )
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["GATEWAY_URL"] == f"http://127.0.0.1:{BASE_PORTS['gateway'] + offset}"
    assert env["REDIS_URL"] == f"redis://127.0.0.1:{BASE_PORTS['redis'] + offset}/0"
    assert (tmp_path / "dev" / "secrets.json").is_file()


def test_make_targets_use_the_stack_settings_of_the_environment(tmp_path: Path, sub_stack_offset) -> None:
    state_dir = tmp_path / "dev"
    planned = _shell(
        "make -n up down status env demo\n",
        RAE_LOCAL_PORT_OFFSET=str(sub_stack_offset("localstack-idle")),
        RAE_LOCAL_STATE_DIR=str(state_dir),
    )
    commands = [line for line in planned.splitlines() if "rae_localstack" in line or "demo.py" in line]
    assert len(commands) == 5, planned
    # The offset reaches each command through the environment (the same for all of them).
    assert all("--port-offset" not in line for line in commands), commands
    assert all(f"--state-dir {state_dir}" in line for line in commands), commands


def test_demo_talks_to_the_stack_at_the_offset_of_the_environment(tmp_path: Path, sub_stack_offset) -> None:
    offset = sub_stack_offset("localstack-idle")  # nothing runs there
    done = subprocess.run(
        [sys.executable, "tools/demo.py"],
        env=_clean_env(RAE_LOCAL_PORT_OFFSET=str(offset), RAE_LOCAL_STATE_DIR=str(tmp_path / "dev")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout
    gateway = f"http://127.0.0.1:{BASE_PORTS['gateway'] + offset}"
    assert done.stderr.splitlines()[0] == (
        f"make demo: no RAE gateway answers at {gateway} (state dir {tmp_path / 'dev'}, port offset "
        f"{offset}); start the stack with `make up` and the same RAE_LOCAL_PORT_OFFSET / RAE_LOCAL_STATE_DIR"
    )
