"""``aiflow-nb event send|list|tail``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiflow_nb import errors
from aiflow_nb.cli.args import value
from aiflow_nb.cli.output import Output
from aiflow_nb.client import Client
from aiflow_nb.tables import printable

EVENT_COLUMNS = ("offset", "namespace", "key", "value", "sender", "create_time")


def _event_row(e: Any) -> dict[str, Any]:
    d: dict[str, Any] = e.to_dict()
    d["value"] = json.dumps(e.value) if not isinstance(e.value, str) else e.value
    return d


def event_cmd(args: argparse.Namespace, out: Output) -> int:
    client = Client(home=args.home)
    if args.action == "send" and args.file is not None:
        events, keys = _read_events(args.file)
        offsets = client.send_events(events, keys)
        out.one({"offsets": offsets}, f"sent {len(offsets)} events from {args.file} (offsets {_span(offsets)})")
    elif args.action == "send":
        offset = client.send_event(args.key, value(args.value), args.namespace or "default")
        out.one({"offset": offset}, f"sent {args.key!r} at offset {offset}")
    elif args.action == "list":
        found = client.events(since=args.since or 0, limit=args.limit, key=args.key_filter, namespace=args.namespace)
        out.rows([e.to_dict() if out.json else _event_row(e) for e in found], EVENT_COLUMNS)  # JSON keeps types
    elif args.action == "tail":
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            for event in client.stream(
                since=args.since if args.since is not None else client.health()["latest_offset"]
            ):
                if args.key_filter and event.key != args.key_filter:
                    continue
                if out.json:
                    print(json.dumps(event.to_dict(), default=str), flush=True)
                else:
                    row = _event_row(event)
                    print(printable(f"{row['offset']:>8}  {row['namespace']}/{row['key']}  {row['value']}"), flush=True)
        except KeyboardInterrupt:
            return 0
    return 0


def _read_events(path: str) -> tuple[list[Any], list[str | None]]:
    from aiflow_nb.events.ndjson import read_events

    if path == "-":
        return read_events(sys.stdin, "standard input")
    try:
        with open(path, encoding="utf-8") as source:
            return read_events(source, path)
    except OSError as exc:
        raise errors.AiflowError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise errors.InvalidEventError(f"{path} is not UTF-8 text") from None


def _span(offsets: Sequence[int]) -> str:
    """``41-43`` for a run of offsets, else ``41 to 57`` (some were sent before: idempotency keys)."""
    first, last = min(offsets), max(offsets)
    return f"{first}-{last}" if last - first + 1 == len(offsets) else f"{first} to {last}"
