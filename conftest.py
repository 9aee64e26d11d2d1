"""Session fixtures shared by every test suite: the real local infrastructure.

The infrastructure (Postgres+pgvector, Kafka-protocol broker, Bolt server, Redis) is started once
per test session by the project's own stack manager, in `.rae-local/test` (or
`RAE_TEST_STATE_DIR`) with ports offset by `RAE_TEST_PORT_OFFSET` (default 1000) so a running
`make up` stack, or another test session with its own directory and offset, is left alone. Servers named
by DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS / NEO4J_URI / REDIS_URL are used instead of local ones.
Everything the session started is stopped at its end unless RAE_KEEP_STACK=1.

Every port a test uses derives from that offset: a test that starts a stack of its own (a lone
broker it can stop, the stack manager's own tests) takes its offset from `sub_stack_offset`, never
from a literal (tests/test_test_ports.py checks it; the slots are in docs/DEVELOPMENT.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rae_common.settings import ServiceSettings
from rae_common.testing import serve_in_thread, settings_from_env
from rae_localstack import Stack
from rae_memory.main import MemorySettings
from rae_memory.main import create_app as create_memory_app
from rae_ml.adapters.sentence_transformer import MINILM, load_local_embedder
from rae_ml.domain.embeddings import Embedder, ModelRegistry
from rae_ml.main import MLSettings
from rae_ml.main import create_app as create_ml_app

ROOT = Path(__file__).resolve().parent

#: The stacks tests start beside the session's own, each at the session's offset + its slot. Slots
#: are multiples of 100 below 1000: two offsets 100 apart share no port (no two base ports of the
#: stack differ by a multiple of 100), and the next session (the bench stack at 2000, a second test
#: session 1000 higher) stays clear. The stacks needing Postgres take low slots, which keeps its
#: port below the ephemeral range (32768) for session offsets up to 7000.
SUB_STACK_SLOTS: Mapping[str, int] = {
    "events-broker-down": 100,  # services/events/tests/integration/test_faults.py
    "broker-restart": 200,  # the broker-restart fault test
    "localstack": 300,  # deploy/local/tests: the stack manager's own stack (infra + tiny services)
    "outbox-broker-down": 400,  # libs/common/tests/integration/test_outbox.py
    "localstack-external": 500,  # deploy/local/tests: a stack whose servers are all external
    "localstack-idle": 600,  # deploy/local/tests: stacks that never start anything
    "localstack-republish": 700,  # deploy/local/tests/test_republish.py: a broker and services
    "chart-processes": 800,  # tests/charts/test_chart_processes.py: the services the chart renders
    "fresh-broker": 900,  # libs/common/tests/integration/test_topics.py: a broker without topics
}


@dataclass(frozen=True)
class SubStackOffsets:
    """``sub_stack_offset("outbox-broker-down")``: the port offset of a test's own stack."""

    session: int
    slots: Mapping[str, int] = field(default_factory=lambda: SUB_STACK_SLOTS)

    def __call__(self, name: str) -> int:
        return self.session + self.slots[name]


@pytest.fixture(scope="session")
def test_port_offset() -> int:
    """The session stack's port offset (RAE_TEST_PORT_OFFSET, default 1000)."""
    return int(os.environ.get("RAE_TEST_PORT_OFFSET", "1000"))


@pytest.fixture(scope="session")
def sub_stack_offset(test_port_offset: int) -> SubStackOffsets:
    return SubStackOffsets(test_port_offset)


E2E = ROOT / "tests" / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the e2e suite last: its services run until the session ends and stay members of their
    consumer groups (graph, reflection, ...), so a later test joining one of those groups would
    wait for partitions they hold."""
    items.sort(key=lambda item: item.path.is_relative_to(E2E))


@pytest.fixture(scope="session")
def stack(test_port_offset: int) -> Iterator[Stack]:
    stack = Stack(
        Path(os.environ.get("RAE_TEST_STATE_DIR", ROOT / ".rae-local" / "test")),
        port_offset=test_port_offset,
    )
    stack.up_infra()
    yield stack
    if os.environ.get("RAE_KEEP_STACK") != "1":
        stack.down()


@pytest.fixture(scope="session")
def infra_env(stack: Stack) -> dict[str, str]:
    return stack.service_env()


@pytest.fixture(scope="session")
def settings(infra_env: dict[str, str]) -> ServiceSettings:
    return settings_from_env(infra_env, ServiceSettings)


@pytest.fixture(scope="session")
def local_embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once per test session."""
    return load_local_embedder(threads=2)


@pytest.fixture(scope="session")
def models(local_embedder: Embedder) -> ModelRegistry:
    """A model registry handing the session's model to every ml app."""
    registry = ModelRegistry(default=MINILM.name)
    registry.register(MINILM, lambda: local_embedder)
    return registry


@pytest.fixture(scope="session")
def ml_url(infra_env: dict[str, str], models: ModelRegistry) -> Iterator[str]:
    """The real ml service over HTTP, for services that call it."""
    with serve_in_thread(create_ml_app(settings_from_env(infra_env, MLSettings), models=models)) as url:
        yield url


@pytest.fixture(scope="session")
def memory_url(infra_env: dict[str, str], ml_url: str) -> Iterator[str]:
    """The real memory service over HTTP, for services that call it (graph, reflection)."""
    with serve_in_thread(
        create_memory_app(settings_from_env(infra_env, MemorySettings, ml_url=ml_url))
    ) as url:
        yield url
