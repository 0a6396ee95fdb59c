"""`hubbub.loadgen.acks`: its flags refuse bad values, and a tiny real run produces numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BENCH = [sys.executable, "-m", "hubbub.loadgen.acks"]


@pytest.mark.parametrize("args", [
    ["--connections", "0"], ["--connections", "-3"], ["--connections", "many"],
    ["--connections", str(10**9)], ["--pipeline", "0"], ["--duration", "0"],
    ["--duration", "nan"], ["--duration", "inf"], ["--duration", "-1"],
    ["--warmup", "-0.5"], ["--repeat", "0"], ["--text-bytes", "0"],
    ["--commit-window-ms", "nan"], ["--stores", "memory,postgres"], ["--stores", ","],
    ["--rooms", "x"], ["--rooms", "0"], ["--rooms", "100000"], ["--rooms", "1,,2"],
    ["--client-cpu", "not-a-cpu"], ["--client-cpu", "9999"],
    ["--server-cpu", "not-a-cpu"], ["--server-cpu", "9999"], ["--server-cpu", "3-1"],
])
def test_bad_arguments_exit_2_with_a_message(args: list[str]) -> None:
    done = subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "error" in done.stderr or "bench-acks:" in done.stderr
    assert "Traceback" not in done.stderr


def test_small_run_reports_every_store() -> None:
    done = subprocess.run(
        [*BENCH, "--json", "--duration", "0.5", "--warmup", "0.1", "--rooms", "1,3",
         "--connections", "2", "--pipeline", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    points = {(p["store"], p["rooms"]): p for p in report["points"]}
    assert set(points) == {(s, r) for s in ("memory", "sqlite-fsync", "sqlite-batch")
                           for r in (1, 3)}
    for point in points.values():
        assert point["acked"] > 0 and point["errors"] == 0
        assert 0 < point["p50_ms"] <= point["p99_ms"]
    assert points[("memory", 1)]["vs_memory"] == 1.0
    assert report["machine"]["sqlite"]
    # Group-commit size comes from the SQLite store's closing log line.
    assert points[("memory", 1)]["mean_batch"] is None
    for store in ("sqlite-fsync", "sqlite-batch"):
        assert points[(store, 1)]["mean_batch"] >= 1.0
