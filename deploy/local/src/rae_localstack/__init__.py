"""rae_localstack: run the RAE infrastructure and services as local processes (no Docker).

Typical use::

    from rae_localstack import Stack
    stack = Stack(Path(".rae-local/dev"))
    stack.up()            # infra + services, prints where everything runs
    stack.status()
    stack.down()
"""

from ._exported import MARKER as EXPORTED_MARKER
from ._options import DEFAULT_STATE_DIR, add_stack_options, stack_from_args
from ._stack import (
    BASE_PORTS,
    EXTERNAL_VARS,
    INFRA,
    KAFKA_TOPICS,
    OUTBOX_SERVICES,
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

__all__ = [
    "BASE_PORTS",
    "DEFAULT_STATE_DIR",
    "EXPORTED_MARKER",
    "EXTERNAL_VARS",
    "INFRA",
    "KAFKA_TOPICS",
    "OUTBOX_SERVICES",
    "SERVICES",
    "SERVICE_URL_VARS",
    "ComponentStatus",
    "Kind",
    "Stack",
    "StackError",
    "State",
    "add_stack_options",
    "format_summary",
    "format_table",
    "stack_from_args",
]
