"""The engine settings of ``python -m aiflow_nb.server`` and ``aiflow-nb server start``.

Kept apart from :mod:`aiflow_nb.server.main` so the CLI can offer them without
importing the engine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

#: The files of --dask-tls-*: a CA certificate, the service's certificate and its key.
TLS_PARTS = ("ca", "cert", "key")
TLS_HELP = (
    "the CA certificate that signed the scheduler's",
    "the service's client certificate (signed by that CA)",
    "the private key of that certificate",
)


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine's settings (and the service's beyond --ip/--port), shared by ``aiflow-nb server start``."""
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow an --ip that is not a loopback address (other machines can then reach the service)",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive(int),
        default=1000,
        help="HTTP connections open at once; more are closed as they come (default 1000, kept below the "
        "process's descriptor limit)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive(float),
        default=10.0,
        help="seconds a connection may wait for a whole request head (or idle between requests) before it "
        "is closed (default 10)",
    )
    parser.add_argument(
        "--executor",
        default="kernel-pool",
        help="where task runs go: kernel-pool (runners, kernels started ahead; the default), local (a process "
        "each) or dask (a Dask cluster, see --dask-address); a task may name its own",
    )
    parser.add_argument(
        "--pool-size",
        type=_positive(int),
        help="kernel-pool: spare runners per pool, one pool for bash and Python and one per kernel (default 1)",
    )
    parser.add_argument(
        "--kernels",
        help="kernel-pool: comma-separated kernel names whose pools start at once (default: with their first task)",
    )
    parser.add_argument(
        "--preload",
        help="kernel-pool: comma-separated modules its kernel fork servers import first, e.g. pandas,numpy",
    )
    parser.add_argument(
        "--dask-address",
        help="dask: the Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: $AIFLOW_NB_DASK_ADDRESS); "
        "for --executor dask and for tasks that name the dask executor",
    )
    for part, what in zip(TLS_PARTS, TLS_HELP, strict=True):
        parser.add_argument(f"--dask-tls-{part}", metavar="FILE", help=f"dask: TLS to a tls:// scheduler: {what}")
    parser.add_argument(
        "--max-parallel", type=_positive(int), default=16, help="task processes running at once (default 16)"
    )
    parser.add_argument(
        "--stop-grace", type=_positive(float), default=10.0, help="seconds from SIGTERM to SIGKILL on a stop (10)"
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=_positive(float),
        default=60.0,
        help="seconds of silence after which a task run is FAILED, unless its task sets its own (60)",
    )


def engine_flags(args: argparse.Namespace) -> list[str]:
    """The command-line flags that pass ``add_engine_arguments``' values on."""
    flags = [
        *(["--allow-remote"] if args.allow_remote else []),
        f"--max-connections={args.max_connections}",
        f"--idle-timeout={args.idle_timeout}",
        f"--executor={args.executor}",
        f"--max-parallel={args.max_parallel}",
        f"--stop-grace={args.stop_grace}",
        f"--heartbeat-timeout={args.heartbeat_timeout}",
    ]
    if args.pool_size is not None:
        flags.append(f"--pool-size={args.pool_size}")
    if args.kernels is not None:
        flags.append(f"--kernels={args.kernels}")
    if args.preload is not None:
        flags.append(f"--preload={args.preload}")
    if args.dask_address is not None:
        flags.append(f"--dask-address={args.dask_address}")
    flags += [f"--dask-tls-{p}={getattr(args, f'dask_tls_{p}')}" for p in TLS_PARTS if getattr(args, f"dask_tls_{p}")]
    return flags


def executor_options(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The options of each executor (``Engine(executors=...)``); ValueError if they do not fit ``--executor``."""
    pool: dict[str, object] = {}
    if args.pool_size is not None:
        pool["pool_size"] = args.pool_size
    if args.kernels is not None:
        pool["kernels"] = [k.strip() for k in args.kernels.split(",") if k.strip()]
    if pool and args.executor != "kernel-pool":
        raise ValueError(f"--pool-size and --kernels are settings of the kernel-pool executor, not of {args.executor}")
    if args.preload is not None:
        if args.executor != "kernel-pool":
            raise ValueError(f"--preload is a setting of the kernel-pool executor, not of {args.executor}")
        pool["preload"] = [m.strip() for m in args.preload.split(",") if m.strip()]
    options: dict[str, dict[str, object]] = {"kernel-pool": pool} if pool else {}
    if args.dask_address is not None:
        # Made at start even when it is not the default: an unreachable cluster fails the start.
        options["dask"] = {"address": args.dask_address}
    tls = {f"tls_{p}": getattr(args, f"dask_tls_{p}") for p in TLS_PARTS if getattr(args, f"dask_tls_{p}")}
    if tls:
        options["dask"] = {**options.get("dask", {}), **tls}
    return options
