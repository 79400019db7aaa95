"""``aiflow-nb server start|stop|status``."""

from __future__ import annotations

import argparse

from aiflow_nb.cli.output import Output
from aiflow_nb.home import default_home
from aiflow_nb.server.options import engine_flags


def server_cmd(args: argparse.Namespace, out: Output) -> int:
    from aiflow_nb.server import control

    home = (args.home or default_home()).expanduser().resolve()
    if args.action == "start":
        if args.foreground:
            from aiflow_nb.server.main import main as serve

            argv = ["--home", str(home), "--ip", args.ip, "--port", str(args.port), *engine_flags(args)]
            return serve(argv)
        server, new = control.start(home, ip=args.ip, port=args.port, flags=engine_flags(args))
        out.one(
            {"url": server.url, "pid": server.pid, "home": str(home), "started": new},
            f"aiflow-nb {'started' if new else 'is already running'} at {server.url} (pid {server.pid}, home {home})",
        )
        return 0
    if args.action == "stop":
        stopped = control.stop(home)
        if stopped is None:
            out.one({"stopped": False, "home": str(home)}, f"no aiflow-nb service is running for {home}")
            return 0
        out.one({"stopped": True, "pid": stopped.pid}, f"stopped aiflow-nb (pid {stopped.pid})")
        return 0
    current = control.status(home)
    if current is None:
        out.one({"running": False, "home": str(home)}, f"no aiflow-nb service is running for {home}")
        return 3
    healthy = control.healthy(current)
    out.one(
        {"running": True, "healthy": healthy, "url": current.url, "pid": current.pid, "version": current.version},
        f"running at {current.url} (pid {current.pid}, version {current.version})"
        + ("" if healthy else ", NOT answering"),
    )
    return 0 if healthy else 1
