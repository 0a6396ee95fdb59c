"""What the bench measures: an external URL, or a server it starts, pins and watches.

A started server runs on a free loopback port with its output in a temporary log (shown
when it fails to start), pinned to CPU 0 with `taskset` when the machine has a CPU left for
the load generator. `ServerProcess.cpu_seconds()` and `.rss()` cover the process and its
children, read with psutil.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from hubbub.loadgen.errors import BenchError

STRATEGIES = ("sequential", "concurrent", "queued", "auto")
SERVER_CPU = 0
START_TIMEOUT = 30.0


def benchmarks_dir() -> Path:
    """`benchmarks/` of the source checkout (or of the current directory)."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = base / "benchmarks"
        if (candidate / "note_server.py").is_file():
            return candidate
    raise BenchError("benchmarks/ (the baseline servers) not found: run from a hubbub checkout")


@dataclass(frozen=True)
class Target:
    """A server to measure. `command` is None for an external server at `url`; otherwise
    `{port}` in `command` and `url` is replaced by the port the bench picks."""

    name: str
    url: str
    command: tuple[str, ...] | None = None

    @property
    def started_by_bench(self) -> bool:
        return self.command is not None


def hubbub_target(strategy: str, extra: list[str]) -> Target:
    command = (
        sys.executable, "-m", "hubbub", "serve", "--host", "127.0.0.1", "--port", "{port}",
        "--store", "memory", "--rate-per-second", "0", "--plain-history", "0",
        # Every bench connection comes from 127.0.0.1: no per-address limits.
        "--max-connections-per-ip", "0", "--connection-rate-per-second", "0",
        "--fanout", strategy, "--data-dir", "{data_dir}", *extra,
    )
    return Target(f"hubbub/{strategy}", "ws://127.0.0.1:{port}/ws", command)


def note_target() -> Target:
    script = str(benchmarks_dir() / "note_server.py")
    return Target("note", "ws://127.0.0.1:{port}/ws",
                  (sys.executable, script, "--host", "127.0.0.1", "--port", "{port}"))


def websockets_target() -> Target:
    script = str(benchmarks_dir() / "websockets_server.py")
    return Target("websockets", "ws://127.0.0.1:{port}/",
                  (sys.executable, script, "--host", "127.0.0.1", "--port", "{port}"))


def command_target(spec: str, path: str) -> Target:
    """`--compare-with "CMD ... {port} ..."`: any server command line (run without a shell)."""
    argv = tuple(shlex.split(spec))
    if not argv or not any("{port}" in arg for arg in argv):
        raise ValueError("the command must contain {port}")
    program = Path(argv[0]).name
    # `python some_server.py ...` is best known by its script's name.
    name = Path(argv[1]).name if program.startswith("python") and len(argv) > 1 else program
    return Target(name, "ws://127.0.0.1:{port}" + path, argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinning_cpus() -> tuple[set[int], set[int]] | None:
    """(server CPUs, generator CPUs), or None when there are too few CPUs to split."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[SERVER_CPU]}, set(cpus[1:])


@dataclass
class ServerProcess:
    target: Target
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    workdir: tempfile.TemporaryDirectory[str]
    final_log: str = ""
    _ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self._ps = psutil.Process(self.proc.pid)

    @classmethod
    def start(cls, target: Target, pin: set[int] | None) -> ServerProcess:
        assert target.command is not None
        port = free_port()
        workdir = tempfile.TemporaryDirectory(prefix="hubbub-bench-")
        data_dir = Path(workdir.name) / "data"
        argv = [arg.replace("{port}", str(port)).replace("{data_dir}", str(data_dir))
                for arg in target.command]
        if pin and shutil.which("taskset"):
            argv = ["taskset", "-c", ",".join(map(str, sorted(pin))), *argv]
        log_path = Path(workdir.name) / "server.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        server = cls(target, target.url.replace("{port}", str(port)), proc, log_path, workdir)
        server._wait_listening(port)
        return server

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_text()
                self.workdir.cleanup()
                raise BenchError(f"{self.target.name} exited with {self.proc.returncode}:\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError(f"{self.target.name} did not listen within {START_TIMEOUT:.0f} s")

    def log_text(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self._ps, *self._ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        return cpu_seconds(self._tree())

    def rss(self) -> int:
        total = 0
        for proc in self._tree():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code. The log's tail,
        shutdown lines included, stays readable as `final_log` once the files are gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.final_log = self.log_text()
        self.workdir.cleanup()
        return code


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User plus system CPU time of `processes`, skipping any that have exited."""
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
