"""Tiny real runs of the bench against real servers. Behaviour only: counts, ratios, schema,
files. Latency and throughput numbers are never asserted (they depend on the machine)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psutil
import pytest

from support.server import ServerProcess, free_port

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY = ["--subscribers", "20", "--rate", "200", "--duration", "1", "--warmup", "0.3",
        "--drain", "3", "--quiet"]
POINT_KEYS = {
    "rate", "subscribers", "duration_s", "scheduled", "sent", "received", "delivery_ratio",
    "deliveries_per_s", "latency", "stale", "out_of_order", "unexpected", "unexpected_samples",
    "subscribers_closed", "close_codes", "publisher_on_time", "publisher_lag_p99_ms",
    "generator_cpu_pct", "generator_bound", "other_cpu_pct", "server_cpu_pct",
    "server_peak_rss_mib", "offered_deliveries_per_s", "sustainable",
}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hubbub.loadgen", *args], capture_output=True,
                          text=True, timeout=60)


def bench_json(*args: str) -> dict[str, Any]:
    result = bench(*args, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def only_point(data: dict[str, Any]) -> dict[str, Any]:
    [target] = data["results"]
    [point] = target["points"]
    assert set(point) == POINT_KEYS
    return cast(dict[str, Any], point)


@contextmanager
def baseline(script: str) -> Iterator[int]:
    """A baseline server of benchmarks/ on a free port (yielded); at the end it is stopped
    with SIGTERM, which it must answer by exiting 0."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(BENCHMARKS / script), "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert " ready on ws://127.0.0.1:" in proc.stdout.readline()
        yield port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def note_server() -> Iterator[str]:
    """The teaching note's server, started by the test: an external server for the bench."""
    with baseline("note_server.py") as port:
        yield f"ws://127.0.0.1:{port}/ws"


def test_every_message_reaches_every_subscriber_of_the_note_server(note_server: str) -> None:
    data = bench_json("--url", note_server, *TINY)
    assert data["version"] == 1
    assert data["config"]["subscribers"] == 20
    assert data["config"]["targets"] == [note_server]
    point = only_point(data)
    assert point["scheduled"] == point["sent"] == 200
    assert point["received"] == 200 * 20
    assert point["delivery_ratio"] == 1.0
    assert point["stale"] == point["unexpected"] == point["out_of_order"] == 0
    assert set(point["latency"]) == {"p50_ms", "p90_ms", "p99_ms", "max_ms"}
    assert all(isinstance(v, float) for v in point["latency"].values())
    # An external server: the bench cannot see its CPU or memory.
    assert point["server_cpu_pct"] is None and point["server_peak_rss_mib"] is None


def test_real_hubbub_server(start_server: Any) -> None:
    server: ServerProcess = start_server("--store", "memory", "--rate-per-second", "0",
                                         "--plain-history", "0")
    point = only_point(bench_json("--url", server.ws_url, *TINY))
    assert point["received"] == 200 * 20
    assert point["delivery_ratio"] == 1.0
    assert point["unexpected"] == 0


def test_hubbub_started_by_the_bench_with_a_sweep_and_a_plot(tmp_path: Path) -> None:
    plot = tmp_path / "sweep.png"
    result = bench("--fanout", "sequential", "--subscribers", "10", "--sweep", "50,100",
                   "--duration", "0.5", "--warmup", "0", "--quiet", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith("hubbub/sequential ")]
    assert len(rows) == 3  # two points, one max-sustainable line
    assert all(" 1.0000 " in row for row in rows[:2])
    assert any(line.startswith("target") and "max sustainable" in line for line in lines)
    head = plot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width > 100 and height > 100


def test_stalled_clients_and_server_stats_are_reported() -> None:
    data = bench_json("--server", "hubbub", "--stalled", "2", *TINY)
    point = only_point(data)
    assert point["delivery_ratio"] == 1.0  # the stalled clients are not counted
    assert point["server_cpu_pct"] is not None and point["server_peak_rss_mib"] > 0
    stalled = data["results"][0]["stalled"]
    assert stalled["stalled"] == 2
    assert sum(stalled["close_codes"].values()) == stalled["closed"]


def test_idle_mode_reports_memory_per_connection() -> None:
    data = bench_json("--server", "note", "--idle", "50", "--quiet")
    [target] = data["results"]
    assert target["points"] == []
    idle = target["idle"]
    assert idle["connections"] == 50
    assert idle["rss_after_mib"] > 0
    assert isinstance(idle["kib_per_connection"], float)


@pytest.mark.parametrize("script", ["note_server.py", "websockets_server.py"])
def test_baseline_servers_stop_cleanly_on_sigterm(script: str) -> None:
    with baseline(script):
        pass  # `baseline` checks the start and the clean exit


def test_compare_runs_every_strategy_and_the_baselines() -> None:
    extra = f"{sys.executable} {BENCHMARKS / 'note_server.py'} --port {{port}}"
    data = bench_json("--compare", "--compare-with", extra, "--subscribers", "5", "--rate",
                      "50", "--duration", "0.3", "--warmup", "0", "--drain", "2", "--quiet")
    names = [r["target"] for r in data["results"]]
    assert names == ["hubbub/sequential", "hubbub/concurrent", "hubbub/queued", "hubbub/auto",
                     "websockets", "note", "note_server.py"]
    for result in data["results"]:
        assert result["error"] is None
        assert result["points"][0]["delivery_ratio"] == 1.0
    assert set(data["ratios"]) == {"hubbub/sequential", "websockets"}
    assert set(data["ratios"]["websockets"]) == set(names)


def test_sigterm_stops_the_bench_and_the_server_it_started() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubbub.loadgen", "--server", "note", "--subscribers", "5",
         "--rate", "10", "--duration", "60", "--warmup", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        bench_proc = psutil.Process(proc.pid)
        servers: list[psutil.Process] = []
        deadline = time.monotonic() + 20
        while not servers and time.monotonic() < deadline:
            servers = [p for p in bench_proc.children(recursive=True)
                       if any("note_server.py" in arg for arg in p.cmdline())]
            time.sleep(0.1)
        assert servers, "the bench never started the note server"
        assert proc.stderr is not None
        for line in proc.stderr:  # wait for the measurement to be under way
            if "msg/s" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # the test failed midway: SIGTERM is what it tests
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 130
    assert "interrupted" in err
    assert "Traceback" not in err
    _, alive = psutil.wait_procs(servers, timeout=5)
    assert not alive
