"""Start, stop and inspect the local RAE stack (infrastructure servers + services on 127.0.0.1)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence

from . import INFRA, StackError, add_stack_options, format_summary, format_table, stack_from_args
from ._exported import mark_own


def _parser() -> argparse.ArgumentParser:
    # The stack options are accepted both before and after the subcommand
    # (``--state-dir X up`` / ``up --state-dir X``).
    common = argparse.ArgumentParser(add_help=False)
    add_stack_options(common, suppress=True)
    parser = argparse.ArgumentParser(prog="python -m rae_localstack", description=__doc__)
    add_stack_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start what is not running, wait until ready")
    up.add_argument("--infra-only", action="store_true", help="start the infrastructure only")
    down = sub.add_parser("down", parents=[common], help="stop what this state dir started")
    down.add_argument(
        "--services-only", action="store_true", help="stop the services, keep the infrastructure"
    )
    status = sub.add_parser("status", parents=[common], help="show what runs where")
    status.add_argument("--infra-only", action="store_true", help="show the infrastructure only")
    env = sub.add_parser("env", parents=[common], help="print KEY=VALUE lines for the services' environment")
    env.add_argument("--infra-only", action="store_true", help="print the infrastructure variables only")
    env.add_argument("--export", action="store_true", help="prefix each line with 'export '")
    env.epilog = (
        "The output also sets RAE_LOCALSTACK_EXPORTED, naming the values the stack chose itself: "
        "a stack started later from a shell that evaluated it does not take them for external servers."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stack = stack_from_args(args)
    out = sys.stdout
    try:
        if args.command == "up":
            started = time.monotonic()
            stack.up_infra()
            if not args.infra_only:
                stack.up_services()
            statuses = stack.status()
            if args.infra_only:
                statuses = [s for s in statuses if s.kind == "infra"]
            out.write(format_summary(stack, statuses))
            out.write(f"up in {time.monotonic() - started:.1f} s\n")
        elif args.command == "down":
            if args.services_only:
                stack.down_services()
            else:
                stack.down()
            out.write(f"stopped ({stack.state_dir})\n")
        elif args.command == "status":
            statuses = stack.status()
            if args.infra_only:
                statuses = [s for s in statuses if s.name in INFRA]
            out.write(format_table(statuses))
        elif args.command == "env":
            values = mark_own(stack.infra_env() if args.infra_only else stack.service_env(), stack.env)
            prefix = "export " if args.export else ""
            out.writelines(f"{prefix}{key}={shlex.quote(value)}\n" for key, value in values.items())
    except StackError as exc:
        sys.stderr.write(f"rae_localstack {args.command}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        note = " (stopped what this call had started)" if args.command == "up" else ""
        sys.stderr.write(f"rae_localstack {args.command}: interrupted{note}\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
