"""`hubbub bench`: command-line flags and their validation.

Only light modules are imported here, because the `hubbub` command imports every
subcommand's flags at start-up; the load generator itself (numpy, psutil, worker
processes) is imported by `run()`, from `session.py`.

Exit codes: 0 measured (whatever the numbers); 1 the run failed (a server the bench
started crashed, a worker died); 2 bad flags, or the `--url` server cannot be reached.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from hubbub.loadgen import payload
from hubbub.loadgen.endpoint import Endpoint
from hubbub.server.settings import FANOUT_STRATEGIES, setting, show_default

MAX_RATE = 1_000_000.0
MAX_CONNECTIONS = 200_000
MAX_SWEEP_POINTS = 50
MAX_SECONDS = 3600.0


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:,} and {hi:,}, not {value}")
        return value
    return parse


def _float_in(lo: float, hi: float, lo_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
            bound = f"more than {lo:g}" if lo_open else f"at least {lo:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} and at most {hi:g}, not {text}")
        return value
    return parse


_rate = _float_in(0.0, MAX_RATE, lo_open=True)


def _sweep(text: str) -> list[float]:
    parts = text.split(",")
    if len(parts) > MAX_SWEEP_POINTS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SWEEP_POINTS} rates")
    rates = [_rate(part.strip()) for part in parts]
    if rates != sorted(set(rates)):
        raise argparse.ArgumentTypeError("rates must be distinct and increasing")
    return rates


def _url(text: str) -> str:
    try:
        Endpoint.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return text


def _path(text: str) -> str:
    if not text.startswith("/") or any(ch.isspace() for ch in text) or not text.isprintable():
        raise argparse.ArgumentTypeError("must start with / and contain no spaces")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hubbub bench`; limits are checked here so that bad values exit with 2."""
    target = parser.add_argument_group("target (default: start hubbub with --fanout auto)")
    target.add_argument("--url", type=_url,
                        help="measure an external server that relays text, e.g. ws://127.0.0.1:8080/ws")
    target.add_argument("--server", choices=("hubbub", "note", "websockets"),
                        help="start this server: hubbub (default), or a baseline in benchmarks/")
    target.add_argument("--fanout", choices=FANOUT_STRATEGIES,
                        help="hubbub's fan-out strategy (default: "
                             f"{show_default(setting('fanout'))})")
    target.add_argument("--compare", action="store_true",
                        help="run hubbub with every --fanout strategy, then both baselines")
    target.add_argument("--compare-with", action="append", default=[], metavar="CMD",
                        help="with --compare: also start this command, which must contain "
                             "{port} (repeatable)")
    target.add_argument("--compare-path", type=_path, default="/ws",
                        help="WebSocket path of --compare-with servers")
    target.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `hubbub serve` (repeatable; use --server-arg=--x)")
    load = parser.add_argument_group("load")
    load.add_argument("--subscribers", type=_int_in(1, MAX_CONNECTIONS), default=100,
                      help="clients that join the room and receive every message")
    load.add_argument("--rate", type=_rate, default=100.0, help="published messages per second")
    load.add_argument("--sweep", type=_sweep,
                      help="comma-separated increasing rates, e.g. 100,200,500; overrides --rate")
    load.add_argument("--size", type=_int_in(payload.MIN_SIZE, payload.MAX_SIZE), default=64,
                      help=f"message size in bytes ({payload.MIN_SIZE} to {payload.MAX_SIZE})")
    load.add_argument("--duration", type=_float_in(0.0, MAX_SECONDS, lo_open=True), default=5.0,
                      help="seconds of publishing per point")
    load.add_argument("--warmup", type=_float_in(0.0, MAX_SECONDS), default=1.0,
                      help="seconds of publishing before the first point, not measured")
    load.add_argument("--drain", type=_float_in(0.0, MAX_SECONDS), default=5.0,
                      help="at most this many seconds to wait for late deliveries per point")
    load.add_argument("--stalled", type=_int_in(0, MAX_CONNECTIONS), default=0,
                      help="extra clients that connect and never read")
    load.add_argument("--idle", type=_int_in(1, MAX_CONNECTIONS), metavar="N",
                      help="instead of load: open N idle connections, report server KiB each")
    load.add_argument("--workers", type=_int_in(1, 64),
                      help="load-generator processes (default: one per CPU left to the generator)")
    load.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                      help="pin the started server to CPU 0 and the generator to the others")
    load.add_argument("--connect-timeout", type=_float_in(0.0, 600.0, lo_open=True), default=10.0,
                      help="seconds a connection may take to open")
    out = parser.add_argument_group("output")
    out.add_argument("--p99-budget-ms", type=_float_in(0.0, 1e6, lo_open=True), default=250.0,
                     help="a point is sustainable only with p99 below this")
    out.add_argument("--json", action="store_true", help="print JSON instead of tables")
    out.add_argument("--plot", type=Path, metavar="FILE.png",
                     help="draw latency and delivery ratio against offered load")
    out.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from hubbub.loadgen.session import execute

    return execute(args)
