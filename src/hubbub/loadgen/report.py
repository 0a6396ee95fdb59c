"""Human-readable tables (stdout) and the JSON document for machines."""

from __future__ import annotations

from typing import Any, TextIO

from hubbub.loadgen.results import TargetResult

JSON_VERSION = 1


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) if i == 0 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def print_results(results: list[TargetResult], budget_ms: float, out: TextIO) -> None:
    load = [r for r in results if r.points]
    if load:
        rows = [["target", "msg/s", "offered/s", "delivered/s", "ratio", "p50 ms", "p90 ms",
                 "p99 ms", "max ms", "pub lag", "srv CPU%", "srv MiB", "gen CPU%", "other CPU%",
                 "ok"]]
        for result in load:
            for p in result.points:
                rows.append([
                    result.target, f"{p.rate:g}", _num(p.offered_deliveries_per_s),
                    _num(p.deliveries_per_s), f"{p.delivery_ratio:.4f}",
                    _ms(p.latency.p50_ms), _ms(p.latency.p90_ms), _ms(p.latency.p99_ms),
                    _ms(p.latency.max_ms), _ms(p.publisher_lag_p99_ms),
                    _num(p.server_cpu_pct, ".0f"),
                    _num(p.server_peak_rss_mib, ".0f"),
                    _num(p.generator_cpu_pct, ".0f") + ("!" if p.generator_bound else ""),
                    _num(p.other_cpu_pct, ".0f"),
                    "yes" if p.sustainable(budget_ms) else "no",
                ])
        table(rows, out)
        out.write(
            f"\nok = delivery ratio >= 0.999, p99 < {budget_ms:g} ms and the publisher kept up.\n"
            "pub lag = p99 ms by which the publisher sent behind schedule (server backpressure"
            " or a busy generator).\n'!' = load generator CPU-bound: its numbers are a floor.\n"
            "other CPU% = other processes on the machine during the point: noise if not ~0.\n"
        )
    for result in load:
        for p in result.points:
            if p.unexpected:
                out.write(f"{result.target} @ {p.rate:g}/s: {p.unexpected} unexpected frames, "
                          f"e.g. {p.unexpected_samples[:2]}\n")
            if p.subscribers_closed:
                out.write(f"{result.target} @ {p.rate:g}/s: server closed {p.subscribers_closed}"
                          f" subscribers (codes {p.close_codes})\n")
            if p.out_of_order:
                out.write(f"{result.target} @ {p.rate:g}/s: {p.out_of_order} messages out of "
                          "order\n")
    sweeps = [r for r in load if len(r.points) > 1 or r.notes]
    if sweeps:
        out.write("\n")
        comparison(sweeps, budget_ms, out)
    stalled = [r for r in results if r.stalled]
    for result in stalled:
        assert result.stalled is not None
        s = result.stalled
        out.write(f"\n{result.target}: {s.closed} of {s.stalled} stalled clients closed by the "
                  f"server (close codes: {s.close_codes or 'none'})\n")
    idle = [r for r in results if r.idle]
    if idle:
        rows = [["target", "connections", "RSS before MiB", "RSS after MiB", "KiB/connection"]]
        for result in idle:
            assert result.idle is not None
            i = result.idle
            rows.append([result.target, f"{i.connections:,}", f"{i.rss_before_mib:.1f}",
                         f"{i.rss_after_mib:.1f}", f"{i.kib_per_connection:.2f}"])
        out.write("\n")
        table(rows, out)
    for result in results:
        for note in result.notes:
            out.write(f"{result.target}: {note}\n")


def comparison(results: list[TargetResult], budget_ms: float, out: TextIO) -> None:
    best = {r.target: r.max_sustainable_rate(budget_ms) for r in results}
    subs = {r.target: r.points[0].subscribers for r in results if r.points}
    bases = [name for name in ("hubbub/sequential", "websockets") if best.get(name)]
    rows = [["target", "max sustainable msg/s", "deliveries/s",
             *[f"x {name}" for name in bases]]]
    for result in results:
        rate = best[result.target]
        row = [result.target, _num(rate, "g"), _num(rate * subs[result.target] if rate else None)]
        for name in bases:
            base = best.get(name)
            row.append(f"{rate / base:.1f}" if rate and base else "-")
        rows.append(row)
    table(rows, out)
    tested = {r.target: max(p.rate for p in r.points) for r in results}
    for result in results:
        rate = best[result.target]
        if rate is not None and rate == tested[result.target]:
            out.write(f"{result.target}: sustainable at the highest rate tried; its limit is "
                      "higher (extend --sweep)\n")


def as_json(results: list[TargetResult], config: dict[str, Any],
            budget_ms: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": JSON_VERSION,
        "config": config,
        "results": [r.as_dict(budget_ms) for r in results],
    }
    best = {r.target: r.max_sustainable_rate(budget_ms) for r in results}
    data["ratios"] = {}
    for base_name in ("hubbub/sequential", "websockets"):
        base = best.get(base_name)
        if base_name in best:
            data["ratios"][base_name] = {
                name: (round(rate / base, 3) if rate and base else None)
                for name, rate in best.items()
            }
    return data
