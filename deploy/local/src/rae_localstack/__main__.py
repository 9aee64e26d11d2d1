"""Start, stop and inspect the local RAE stack (infrastructure servers + services on 127.0.0.1)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from . import (
    INFRA,
    OUTBOX_SERVICES,
    StackError,
    add_stack_options,
    format_summary,
    format_table,
    stack_from_args,
)
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
    republish = sub.add_parser(
        "republish",
        parents=[common],
        help="ask the services to publish again the outbox events of a time range (all kept by default)",
    )
    republish.add_argument("--since", type=_time, help="RFC 3339 time, inclusive (default: the oldest kept)")
    republish.add_argument("--until", type=_time, help="RFC 3339 time, exclusive (default: now)")
    republish.add_argument(
        "--services",
        type=_services,
        default=OUTBOX_SERVICES,
        help=f"comma-separated (default: {','.join(OUTBOX_SERVICES)})",
    )
    return parser


def _time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _services(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names or any(n not in OUTBOX_SERVICES for n in names):
        raise argparse.ArgumentTypeError(f"the services with an outbox are {', '.join(OUTBOX_SERVICES)}")
    return names


def _republished_line(what: str, requeued: dict[str, int]) -> str:
    counts = ", ".join(f"{name} {count}" for name, count in requeued.items()) or "nothing"
    return f"{what}: {counts} (outbox events)\n"


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
            if stack.republished:
                out.write(_republished_line("the broker (re)started; published again", stack.republished))
            waiting = stack.pending_republish()
            if waiting:  # not running yet (or could not): each is asked again by the next `up`
                names = ", ".join(sorted(waiting))
                out.write(f"the broker (re)started; to publish again once `up` has them ready: {names}\n")
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
        elif args.command == "republish":
            if args.since and args.until and args.since > args.until:
                sys.stderr.write("rae_localstack republish: --since is after --until\n")
                return 2
            requeued, failed = stack.republish(args.services, args.since, args.until)
            out.write(_republished_line("published again", requeued))
            for name, why in failed.items():
                sys.stderr.write(f"rae_localstack republish: {name}: {why}\n")
            if failed:
                return 1
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
