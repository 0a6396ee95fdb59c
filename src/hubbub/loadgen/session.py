"""One `hubbub bench` run from flags to report: targets, workers, measurements, output."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from hubbub.loadgen.errors import BenchError, Unreachable
from hubbub.loadgen.report import as_json, print_results
from hubbub.loadgen.results import TargetResult
from hubbub.loadgen.runner import Config, TargetRun, WorkerPool, generator_cores
from hubbub.loadgen.targets import (
    STRATEGIES,
    Target,
    command_target,
    hubbub_target,
    note_target,
    pinning_cpus,
    websockets_target,
)
from hubbub.loadgen.worker import raise_nofile_limit

log = logging.getLogger("hubbub.loadgen")


def _targets(args: argparse.Namespace) -> list[Target]:
    """Raises ValueError for flag combinations that make no sense."""
    if args.url:
        for flag, given in (("--server", args.server), ("--fanout", args.fanout),
                            ("--compare", args.compare), ("--compare-with", args.compare_with),
                            ("--server-arg", args.server_arg), ("--idle", args.idle)):
            if given:
                raise ValueError(f"{flag} needs a server the bench starts; drop --url")
        return [Target(args.url, args.url)]
    if args.compare_with and not args.compare:
        raise ValueError("--compare-with only makes sense with --compare")
    if args.compare:
        if args.fanout or args.server:
            raise ValueError("--compare runs every strategy and both baselines; "
                             "drop --fanout/--server")
        targets = [hubbub_target(s, args.server_arg) for s in STRATEGIES]
        targets += [websockets_target(), note_target()]
        targets += [command_target(spec, args.compare_path) for spec in args.compare_with]
        return targets
    server = args.server or "hubbub"
    if server != "hubbub" and (args.fanout or args.server_arg):
        raise ValueError("--fanout and --server-arg apply to --server hubbub only")
    if server == "note":
        return [note_target()]
    if server == "websockets":
        return [websockets_target()]
    return [hubbub_target(args.fanout or "auto", args.server_arg)]


def _importable(package: str) -> bool:
    # The baseline servers run on this same interpreter, so this answers for them too.
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True


def _usage_error(message: str) -> int:
    sys.stderr.write(f"hubbub bench: error: {message}\n")
    return 2


def execute(args: argparse.Namespace) -> int:
    """Run the bench as the flags say; returns the exit code (see `command.py`)."""
    try:
        targets = _targets(args)
    except ValueError as exc:
        return _usage_error(str(exc))
    if args.idle and args.stalled:
        return _usage_error("--idle and --stalled cannot be combined")
    if args.plot is not None:
        if args.plot.suffix.lower() != ".png":
            return _usage_error("--plot writes a PNG: give a file name ending in .png")
        if not args.plot.resolve().parent.is_dir():
            return _usage_error(f"--plot: directory {args.plot.parent} does not exist")
    missing = [name for name, needed in (("matplotlib", args.plot is not None),
                                         ("websockets", any(t.name == "websockets"
                                                            for t in targets)))
               if needed and not _importable(name)]
    if missing:
        # Checked now: finding out after a long run would lose its results.
        return _usage_error(f"this run needs {', '.join(missing)}: "
                            "pip install 'hubbub[bench]'")
    rates: list[float] = args.sweep or [args.rate]
    logging.basicConfig(level=logging.WARNING, format="hubbub bench: %(message)s")
    limit = raise_nofile_limit()
    needed = (args.idle or args.subscribers + args.stalled) + 64
    if needed > limit:
        return _usage_error(f"{needed:,} connections need more open files than the limit "
                            f"({limit:,}); raise the hard limit (ulimit -Hn)")
    pins = pinning_cpus() if args.pin else None
    server_cpus, gen_cpus = pins if pins else (None, None)
    workers = args.workers or (len(gen_cpus) if gen_cpus else max(1, (os.cpu_count() or 2) - 1))
    config = Config(
        subscribers=args.subscribers, rates=rates, size=args.size, duration=args.duration,
        warmup=args.warmup, drain=args.drain, stalled=args.stalled, idle=args.idle or 0,
        connect_timeout=args.connect_timeout, quiet=args.quiet,
        p99_budget_ms=args.p99_budget_ms,
    )
    if gen_cpus:
        os.sched_setaffinity(0, gen_cpus)
    # SIGTERM stops the run like Ctrl-C does (asyncio.Runner cancels it, and every started
    # server and connection is cleaned up) instead of orphaning servers and workers.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: signal.raise_signal(signal.SIGINT))
    pool = WorkerPool(workers, gen_cpus)
    results: list[TargetResult] = []
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            for target in targets:
                run_ = TargetRun(target, config, pool, server_cpus, generator_cores(gen_cpus))
                try:
                    results.append(runner.run(run_.run()))
                except Unreachable as exc:
                    if not target.started_by_bench:
                        return _usage_error(str(exc))
                    run_.result.error = str(exc)
                    results.append(run_.result)
                except BenchError as exc:
                    run_.result.error = str(exc)
                    results.append(run_.result)
    except KeyboardInterrupt:
        # The interrupted target's own cleanup has run (asyncio.Runner cancelled it).
        sys.stderr.write("hubbub bench: interrupted\n")
        return 130
    finally:
        pool.close()
    failed = [r for r in results if r.error]
    for result in failed:
        sys.stderr.write(f"hubbub bench: {result.target} failed: {result.error}\n")
    _output(args, results, config, targets, workers, pins)
    return 1 if failed else 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop


def _output(args: argparse.Namespace, results: list[TargetResult], config: Config,
            targets: list[Target], workers: int, pins: Any) -> None:
    budget = args.p99_budget_ms
    if args.json:
        settings = {
            "subscribers": config.subscribers, "rates": config.rates, "size": config.size,
            "duration_s": config.duration, "warmup_s": config.warmup, "drain_s": config.drain,
            "stalled": config.stalled, "idle": config.idle or None, "workers": workers,
            "pinned": pins is not None, "p99_budget_ms": budget,
            "targets": [t.name for t in targets],
        }
        json.dump(as_json(results, settings, budget), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_results(results, budget, sys.stdout)
    if args.plot is not None and any(r.points for r in results):
        from hubbub.loadgen.plot import plot

        subs = f"{config.subscribers:,} subscribers, {config.size}-byte messages"
        plot(results, args.plot, f"fan-out: {subs}", budget)
