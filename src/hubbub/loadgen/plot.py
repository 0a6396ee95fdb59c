"""`--plot FILE.png`: latency and delivery ratio against offered load, one line per target."""

from __future__ import annotations

from pathlib import Path

from hubbub.loadgen.results import TargetResult


def plot(results: list[TargetResult], path: Path, title: str,
         budget_ms: float | None = None) -> None:
    """Write a PNG. Points where nothing arrived have no latency and are left out."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    fig, (lat_ax, ratio_ax) = plt.subplots(
        2, 1, figsize=(9, 8), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    for n, result in enumerate(r for r in results if r.points):
        color = f"C{n % 10}"
        points = sorted(result.points, key=lambda p: p.offered_deliveries_per_s)
        xs = [p.offered_deliveries_per_s for p in points]
        p50 = [p.latency.p50_ms for p in points]
        p99 = [p.latency.p99_ms for p in points]
        lat_ax.plot([x for x, y in zip(xs, p50, strict=True) if y is not None],
                    [y for y in p50 if y is not None], "--o", color=color, markersize=3,
                    label=f"{result.target} p50")
        lat_ax.plot([x for x, y in zip(xs, p99, strict=True) if y is not None],
                    [y for y in p99 if y is not None], "-o", color=color, markersize=4,
                    label=f"{result.target} p99")
        ratio_ax.plot(xs, [p.delivery_ratio for p in points], "-o", color=color,
                      markersize=4, label=result.target)
    if budget_ms is not None:
        lat_ax.axhline(budget_ms, color="grey", linestyle=":", linewidth=1,
                       label=f"p99 budget {budget_ms:g} ms")
    lat_ax.set_xscale("log")
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency (ms)")
    lat_ax.set_title(title)
    lat_ax.grid(True, which="both", alpha=0.3)
    lat_ax.legend(fontsize=7, ncol=2)
    ratio_ax.set_xlabel("offered load (deliveries/s = msgs/s x subscribers)")
    ratio_ax.set_ylabel("delivery ratio")
    ratio_ax.set_ylim(-0.02, 1.05)
    ratio_ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
