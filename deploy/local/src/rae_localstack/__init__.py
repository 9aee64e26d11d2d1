"""rae_localstack: run the RAE infrastructure and services as local processes (no Docker).

Typical use::

    from rae_localstack import Stack
    stack = Stack(Path(".rae-local/dev"))
    stack.up()            # infra + services, prints where everything runs
    stack.status()
    stack.down()
"""

from ._stack import (
    BASE_PORTS,
    EXTERNAL_VARS,
    INFRA,
    KAFKA_TOPICS,
    SERVICE_URL_VARS,
    SERVICES,
    ComponentStatus,
    Kind,
    Stack,
    StackError,
    State,
    format_summary,
    format_table,
)

DEFAULT_STATE_DIR = ".rae-local/dev"

__all__ = [
    "BASE_PORTS",
    "DEFAULT_STATE_DIR",
    "EXTERNAL_VARS",
    "INFRA",
    "KAFKA_TOPICS",
    "SERVICES",
    "SERVICE_URL_VARS",
    "ComponentStatus",
    "Kind",
    "Stack",
    "StackError",
    "State",
    "format_summary",
    "format_table",
]
