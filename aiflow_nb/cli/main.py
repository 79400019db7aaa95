"""Run one ``aiflow-nb`` command: a user mistake is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from aiflow_nb import errors
from aiflow_nb.cli.output import Output
from aiflow_nb.cli.parser import build_parser
from aiflow_nb.startup import skip_slow_optional_imports


def main(argv: Sequence[str] | None = None) -> int:
    skip_slow_optional_imports()
    parser = build_parser()
    args = parser.parse_args(argv)
    needs: tuple[str, ...] = getattr(args, "needs_target", ())
    if args.action in needs and not args.target:
        parser.error(f"{args.command} {args.action} needs a {'FILE' if args.action == 'submit' else 'name or id'}")
    if args.command == "workflow" and args.action == "replay" and not args.target and not args.name:
        parser.error("workflow replay needs a FILE, or --name of a submitted workflow")
    if args.command == "event" and args.action == "send" and not args.key and args.file is None:
        parser.error("event send needs a KEY (or --file FILE)")
    if args.command == "event" and args.action == "send" and args.key and args.file is not None:
        parser.error("event send takes a KEY or --file FILE, not both")
    run: Callable[[argparse.Namespace, Output], int] = args.run
    try:
        return run(args, Output(args.output))
    except errors.AiflowError as exc:
        print(f"aiflow-nb: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
