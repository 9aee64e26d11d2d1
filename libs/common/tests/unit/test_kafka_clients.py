"""Every Kafka client the services build takes its connection from `KafkaOptions`: security,
SASL and TLS reach all of them, and every producer's idempotence is the setting's
(KAFKA_ENABLE_IDEMPOTENCE), the dead-letter producers' included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
SOURCES = [ROOT / "libs" / "common" / "src", *sorted((ROOT / "services").glob("*/src"))]
# Helpers of the test suites (the local plaintext broker), shipped beside the code.
TEST_HELPERS = {"testing.py", "testing_processes.py"}
CLIENTS = {
    "AIOKafkaProducer": "producer_kwargs",
    "AIOKafkaConsumer": "client_kwargs",
    "AIOKafkaAdminClient": "client_kwargs",
}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _spread_from(call: ast.Call) -> set[str]:
    """Names of the methods whose result is spread into the call (`**options.client_kwargs()`)."""
    return {
        name
        for keyword in call.keywords
        if keyword.arg is None and isinstance(keyword.value, ast.Call)
        for name in [_name(keyword.value.func)]
        if name is not None
    }


def kafka_clients(kinds: frozenset[str] = frozenset(CLIENTS)) -> list[tuple[str, int, str, ast.Call]]:
    found = []
    for source in SOURCES:
        for path in source.rglob("*.py"):
            if path.name in TEST_HELPERS:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and _name(node.func) in kinds:
                    found.append((str(path.relative_to(ROOT)), node.lineno, _name(node.func) or "", node))
    return found


def test_every_kafka_client_connects_with_the_options_of_the_settings() -> None:
    clients = kafka_clients()
    assert {kind for _, _, kind, _ in clients} == set(CLIENTS), "the scan finds every kind of client"
    wrong = [
        f"{path}:{line}: {kind} without **options.{CLIENTS[kind]}()"
        for path, line, kind, call in clients
        if CLIENTS[kind] not in _spread_from(call)
    ]
    assert wrong == []


def test_the_one_producer_is_the_publisher_whose_idempotence_is_the_settings() -> None:
    producers = [(path, call) for path, _, kind, call in kafka_clients() if kind == "AIOKafkaProducer"]
    # One place builds producers (KafkaPublisher, also the consumers' dead-letter publisher), and
    # it never overrides the idempotence the options carry.
    assert [path for path, _ in producers] == ["libs/common/src/rae_common/messaging.py"]
    assert all(keyword.arg != "enable_idempotence" for _, call in producers for keyword in call.keywords)
    # And one place builds a publisher for a service: from its settings' options.
    publishers = kafka_clients(frozenset({"KafkaPublisher"}))
    assert [(path, ast.unparse(call.args[0])) for path, _, _, call in publishers] == [
        ("libs/common/src/rae_common/resources.py", "state.settings.kafka_options()")
    ]
