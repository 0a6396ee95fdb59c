"""`hubbub serve --workers N`: real supervisor and worker processes on one real port, sharing
rooms through the test session's real Redis (`redis_url`, a prefix per test)."""

from __future__ import annotations

import os
import re
import signal
import socket
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import psutil
import pytest

from support.cli import assert_refused, listening, run_hubbub
from support.server import ServerProcess, free_port
from support.wsclient import JsonClient, http_get_json, join, json_client

pytestmark = pytest.mark.timeout(120)

WORKER_LINE = re.compile(r"hubbub worker (\d+) \(pid (\d+)\) listening on ")


def workers_of(server: ServerProcess) -> dict[int, int]:
    """Worker number -> pid of its latest process, from the workers' start-up lines."""
    return {int(number): int(pid) for number, pid in WORKER_LINE.findall(server.log_text())}


@pytest.fixture
def workers(redis_url: str, redis_prefix: str) -> tuple[str, ...]:
    """The flags of two workers on the session's Redis, under this test's own prefix."""
    return ("--workers", "2", "--redis", redis_url, "--redis-prefix", redis_prefix)


def started(tmp_path: Path, *flags: str, port: int | None = None,
            cpus: set[int] | None = None) -> ServerProcess:
    """A supervisor whose workers all listen (its `hubbub serving on` line is out)."""
    server = ServerProcess(tmp_path / "data", *flags, port=port, cpus=cpus)
    server.start()
    server.wait_for_output("hubbub serving on")
    return server


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def all_gone(pids: list[int], timeout: float = 20.0) -> bool:
    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in pids if not gone(pid)],
                                 timeout=timeout)
    return all(gone(process.pid) for process in alive)


async def connections_by_pid(server: ServerProcess, want: int,
                             attempts: int = 200) -> dict[int, int]:
    """`/healthz` asked over fresh connections until `want` processes answered (the kernel
    spreads connections over the workers): pid -> the connections it holds."""
    seen: dict[int, int] = {}
    for _ in range(attempts):
        status, body = await http_get_json(server.url + "/healthz")
        assert status == 200, body
        seen[int(body["pid"])] = int(body["connections"])
        if len(seen) >= want:
            break
    return seen


def test_more_than_one_worker_needs_redis(tmp_path: Path) -> None:
    port = free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--store", "memory",
             "--data-dir", str(tmp_path / "data")]
    line = assert_refused(run_hubbub(*serve, "--workers", "2"), 2, "--workers 2", "--redis")
    assert line == "hubbub: --workers 2 needs --redis URL: workers share rooms through Redis"
    assert_refused(run_hubbub(*serve, env={"HUBBUB_WORKERS": "3"}), 2, "--redis")
    assert not listening(port)


async def test_workers_share_rooms_through_redis(tmp_path: Path,
                                                 workers: tuple[str, ...]) -> None:
    """Members on both workers: every one gets the one sequence, exactly once, whichever
    worker the publisher is on."""
    server = started(tmp_path, *workers)
    try:
        async with AsyncExitStack() as stack:
            clients: list[JsonClient] = [
                await stack.enter_async_context(json_client(server.ws_url)) for _ in range(20)]
            assert len(await connections_by_pid(server, 2)) == 2
            for client in clients:
                await join(client, "shared")
            for n in range(30):
                await clients[n % 2].expect("publish", room="shared", text=f"m{n}")
            for client in clients:
                events = await client.messages("shared", 30)
                assert [e["text"] for e in events] == [f"m{n}" for n in range(30)]
                assert [e["offset"] for e in events] == list(range(1, 31))
        assert server.stop() == 0
    finally:
        server.kill()


def test_a_redis_password_is_never_shown(tmp_path: Path) -> None:
    result = run_hubbub("serve", "--host", "127.0.0.1", "--port", str(free_port()),
                        "--redis", "redis://:hunter2-secret@127.0.0.1:1/0", "--log-level",
                        "debug", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "redis://:***@127.0.0.1:1/0" in result.stderr + result.stdout
    assert "hunter2" not in result.stderr + result.stdout


def test_a_port_in_use_is_refused_once_before_any_worker_starts(
        tmp_path: Path, workers: tuple[str, ...]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_hubbub("serve", "--host", "127.0.0.1", "--port", str(port), *workers,
                            "--data-dir", str(tmp_path / "data"))
    assert_refused(result, 1, "cannot listen", str(port))
    assert "hubbub worker" not in result.stdout and "hubbub.workers" not in result.stderr


def test_what_every_worker_would_refuse_is_said_once(
        tmp_path: Path, workers: tuple[str, ...]) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not a key\n")
    result = run_hubbub("serve", "--host", "127.0.0.1", "--port", str(free_port()), *workers,
                        "--jwt-public-key-file", str(key), "--data-dir", str(tmp_path / "data"))
    assert_refused(result, 1, "jwt_public_key_file", str(key))
    assert "hubbub worker" not in result.stdout and "hubbub.workers" not in result.stderr


async def test_two_workers_share_one_port_and_stop_with_1001(
        tmp_path: Path, workers: tuple[str, ...]) -> None:
    server = started(tmp_path, *workers, "--log-level", "debug", port=0)
    try:
        serving = server.wait_for_output("hubbub serving on")
        assert serving.startswith(f"hubbub serving on http://127.0.0.1:{server.port} "
                                  "(2 workers, ")
        pids = workers_of(server)
        assert sorted(pids) == [1, 2] and len(set(pids.values())) == 2
        log = server.log_text()
        assert "worker 1 hubbub: settings: " in log and "worker 2 hubbub: settings: " in log
        async with AsyncExitStack() as stack:
            clients: list[JsonClient] = [
                await stack.enter_async_context(json_client(server.ws_url)) for _ in range(20)]
            answered = await connections_by_pid(server, 2)
            assert set(answered) == set(pids.values()), (answered, pids)
            assert sum(answered.values()) == 20 and min(answered.values()) > 0, answered
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            for client in clients:
                close = await client.closed()
                assert close.type == aiohttp.WSMsgType.CLOSE and close.data == 1001, close
        assert server.stop() == 0
        assert all_gone(list(pids.values()))
        assert "Traceback" not in server.log_text()
    finally:
        server.kill()


async def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(
        tmp_path: Path, workers: tuple[str, ...]) -> None:
    server = started(tmp_path, *workers, "--log-format", "json")
    try:
        first = workers_of(server)
        os.kill(first[1], signal.SIGKILL)
        # Logged once the supervisor reaped it: its socket is closed by then.
        server.wait_for_output(f"worker 1 (pid {first[1]}) was killed by SIGKILL; starting "
                               "it again")
        server.wait_for_output("hubbub worker 1 (pid", count=2)
        replaced = workers_of(server)
        assert replaced[2] == first[2] and replaced[1] not in first.values()
        # Every request answers, from the survivor or from the new worker.
        answered = await connections_by_pid(server, 2)
        assert set(answered) == set(replaced.values()), (answered, replaced)
        assert '"worker":1' in server.log_text()  # the new worker's JSON log lines
        assert server.stop() == 0
        assert all_gone([*first.values(), *replaced.values()])
    finally:
        server.kill()


def test_a_worker_that_keeps_dying_makes_the_supervisor_give_up(
        tmp_path: Path, workers: tuple[str, ...]) -> None:
    server = started(tmp_path, *workers)
    try:
        survivor = workers_of(server)[2]
        killed = []
        for attempt in range(1, 7):  # the first start, then 5 restarts within 60 s
            server.wait_for_output("hubbub worker 1 (pid", count=attempt)
            pid = workers_of(server)[1]
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)
        assert server.proc is not None
        assert server.proc.wait(30) == 1
        assert f"worker 1 (pid {killed[-1]}) was killed by SIGKILL: 6 exits within 60 s, " \
               "giving up" in server.log_text()
        assert all_gone([*killed, survivor])
    finally:
        server.kill()


def test_workers_auto_starts_one_per_cpu_it_may_use(
        tmp_path: Path, workers: tuple[str, ...]) -> None:
    # At most two CPUs for the server, so that a big machine does not start dozens.
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    server = started(tmp_path, "--workers", "auto", *workers[2:],
                     cpus=cpus)
    try:
        serving = server.wait_for_output("hubbub serving on")
        if len(cpus) == 1:
            assert "workers" not in serving and not workers_of(server)
        else:
            assert f"({len(cpus)} workers, " in serving
            assert sorted(workers_of(server)) == list(range(1, len(cpus) + 1))
        assert server.stop() == 0
    finally:
        server.kill()


async def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
        tmp_path: Path, workers: tuple[str, ...]) -> None:
    server = started(tmp_path, *workers)
    try:
        pids = list(workers_of(server).values())
        async with json_client(server.ws_url) as client:
            assert server.proc is not None
            server.proc.kill()
            close = await client.closed()
            assert close.type == aiohttp.WSMsgType.CLOSE and close.data == 1001, close
        assert all_gone(pids)
    finally:
        server.kill()
