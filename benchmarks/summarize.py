"""Merge repeated `hubbub bench --json` runs into medians: markdown tables and a plot.

Usage: python benchmarks/summarize.py RUN.json [RUN.json ...] [--plot FILE.png] [--title T]

For every target and offered rate, each number is the median over the runs that measured
that point; "max sustainable" is the median of each run's own verdict (a run whose sweep
found no sustainable rate counts as 0). Ratios compare those medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from hubbub.loadgen.plot import plot
from hubbub.loadgen.results import Latency, Point, TargetResult

FIELDS = ("delivery_ratio", "deliveries_per_s", "p50_ms", "p99_ms", "max_ms",
          "publisher_lag_p99_ms", "server_cpu_pct", "server_peak_rss_mib", "generator_cpu_pct",
          "other_cpu_pct")


def flat(point: dict[str, Any]) -> dict[str, Any]:
    return {**point, **point["latency"]}


def median(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def load(paths: list[Path]) -> tuple[dict[str, dict[float, list[dict[str, Any]]]],
                                     dict[str, list[float]], list[dict[str, Any]]]:
    points: dict[str, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    best: dict[str, list[float]] = defaultdict(list)
    docs = []
    for path in paths:
        doc = json.loads(path.read_text())
        docs.append(doc)
        for result in doc["results"]:
            for point in result["points"]:
                points[result["target"]][point["rate"]].append(flat(point))
            if result["points"]:
                best[result["target"]].append(result["max_sustainable_rate"] or 0.0)
    return points, best, docs


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--title", default="fan-out")
    args = parser.parse_args(argv)
    points, best, docs = load(args.runs)
    idle: dict[str, list[dict[str, Any]]] = defaultdict(list)
    stalled: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        for result in doc["results"]:
            if result["idle"]:
                idle[result["target"]].append(result["idle"])
            if result["stalled"]:
                stalled[result["target"]].append(result["stalled"])
    if idle:
        print("| target | idle connections | server RSS before MiB | after MiB "
              "| KiB per connection (median) | runs |")
        print("|---|--:|--:|--:|--:|--:|")
        for target, runs in idle.items():
            print(f"| {target} | {runs[0]['connections']:,} "
                  f"| {median([r['rss_before_mib'] for r in runs]):.1f} "
                  f"| {median([r['rss_after_mib'] for r in runs]):.1f} "
                  f"| {median([r['kib_per_connection'] for r in runs]):.2f} | {len(runs)} |")
        if not points:
            return 0
        print()
    for target, runs in stalled.items():
        print(f"{target}: stalled clients per run: "
              + "; ".join(f"{r['closed']}/{r['stalled']} closed {r['close_codes']}" for r in runs))
    subscribers = docs[0]["config"]["subscribers"]
    print(f"{len(args.runs)} run(s), {subscribers:,} subscribers, "
          f"{docs[0]['config']['size']}-byte messages, {docs[0]['config']['duration_s']:g} s "
          "per point; medians\n")
    print("| target | msg/s | offered deliveries/s | delivered | p50 ms | p99 ms | max ms "
          "| server CPU % | generator CPU % | other CPU % | runs |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    medians: dict[str, list[Point]] = {}
    for target, by_rate in points.items():
        medians[target] = []
        for rate in sorted(by_rate):
            runs = by_rate[rate]
            m = {f: median([r[f] for r in runs]) for f in FIELDS}
            print(f"| {target} | {rate:g} | {rate * subscribers:,.0f} "
                  f"| {fmt(m['delivery_ratio'], '.2%')} | {fmt(m['p50_ms'], '.1f')} "
                  f"| {fmt(m['p99_ms'], '.1f')} | {fmt(m['max_ms'], '.1f')} "
                  f"| {fmt(m['server_cpu_pct'], '.0f')} | {fmt(m['generator_cpu_pct'], '.0f')} "
                  f"| {fmt(m['other_cpu_pct'], '.0f')} | {len(runs)} |")
            medians[target].append(Point(
                rate=rate, subscribers=subscribers, duration_s=runs[0]["duration_s"],
                scheduled=runs[0]["scheduled"], sent=runs[0]["sent"], received=0,
                delivery_ratio=m["delivery_ratio"] or 0.0,
                deliveries_per_s=m["deliveries_per_s"] or 0.0,
                latency=Latency(m["p50_ms"], None, m["p99_ms"], m["max_ms"]), stale=0,
                out_of_order=0, unexpected=0, unexpected_samples=[], subscribers_closed=0,
                close_codes={}, publisher_on_time=True,
                publisher_lag_p99_ms=m["publisher_lag_p99_ms"] or 0.0,
                generator_cpu_pct=m["generator_cpu_pct"] or 0.0, generator_bound=False,
                other_cpu_pct=m["other_cpu_pct"] or 0.0,
            ))
    print("\n| target | max sustainable msg/s (median) | deliveries/s | per run "
          "| x sequential | x websockets |")
    print("|---|--:|--:|---|--:|--:|")
    best_median = {t: statistics.median(v) for t, v in best.items()}
    for target, rate in best_median.items():
        ratios = []
        for base in ("hubbub/sequential", "websockets"):
            base_rate = best_median.get(base)
            ratios.append(f"{rate / base_rate:.1f}" if base_rate and rate else "-")
        print(f"| {target} | {rate:g} | {rate * subscribers:,.0f} "
              f"| {', '.join(f'{v:g}' for v in best[target])} | {ratios[0]} | {ratios[1]} |")
    if args.plot:
        results = [TargetResult(t, "", True, pts) for t, pts in medians.items()]
        plot(results, args.plot, args.title, docs[0]["config"]["p99_budget_ms"])
        print(f"\nplot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
