"""The options naming a stack (state dir, port offset), the same for every command that uses one:
``python -m rae_localstack`` and ``tools/demo.py`` (``make up`` / ``make demo``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ._stack import Stack

__all__ = ["DEFAULT_STATE_DIR", "PORT_OFFSET_VAR", "STATE_DIR_VAR", "add_stack_options", "stack_from_args"]

DEFAULT_STATE_DIR = ".rae-local/dev"
STATE_DIR_VAR = "RAE_LOCAL_STATE_DIR"
PORT_OFFSET_VAR = "RAE_LOCAL_PORT_OFFSET"


def add_stack_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--state-dir`` and ``--port-offset``, defaulting to $RAE_LOCAL_STATE_DIR / $RAE_LOCAL_PORT_OFFSET.

    ``suppress``: no defaults, for a subcommand's copy of options its parent parser already has."""
    state_default = Path(os.environ.get(STATE_DIR_VAR) or DEFAULT_STATE_DIR)
    offset_default = int(os.environ.get(PORT_OFFSET_VAR) or 0)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=argparse.SUPPRESS if suppress else state_default,
        help=f"data/logs/pids live here (default: ${STATE_DIR_VAR} or {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--port-offset",
        type=int,
        default=argparse.SUPPRESS if suppress else offset_default,
        help=f"added to every port (default: ${PORT_OFFSET_VAR} or 0)",
    )


def stack_from_args(args: argparse.Namespace) -> Stack:
    return Stack(args.state_dir, port_offset=args.port_offset)
