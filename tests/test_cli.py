"""`hubbub` on the command line: bad settings fail fast with one clear line and exit 2.

Each test runs the real `python -m hubbub` in a subprocess, as a user would.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

import hubbub
from hubbub.server.settings import OPTIONS, Settings, setting, show_default
from support.cli import assert_refused, listening, message_lines, run_hubbub
from support.server import ServerProcess, free_port

pytestmark = pytest.mark.timeout(60)


def serve_args(tmp_path: Path, *extra: str) -> tuple[int, list[str]]:
    port = free_port()
    return port, ["serve", "--host", "127.0.0.1", "--port", str(port),
                  "--data-dir", str(tmp_path / "data"), *extra]


def test_version() -> None:
    result = run_hubbub("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hubbub {hubbub.__version__}"


def test_no_command_prints_help_and_exits_2() -> None:
    result = run_hubbub()
    assert result.returncode == 2
    assert "serve" in result.stdout + result.stderr


@pytest.mark.parametrize(("flags", "names"), [
    (["--port", "abc"], ["port", "abc"]),
    (["--port", "70000"], ["port", "70000"]),
    (["--port", "-1"], ["port"]),
    (["--store", "nosuch"], ["store", "nosuch"]),
    (["--rate-per-second", "-1"], ["rate_per_second"]),
    (["--rate-per-second", "nan"], ["rate_per_second"]),
    (["--max-text-bytes", "0"], ["max_text_bytes"]),
    (["--max-text-bytes", "100000"], ["max_text_bytes", "max_frame_bytes"]),
    (["--max-frame-bytes", "10"], ["max_frame_bytes"]),
    (["--allowed-origin", "notanorigin"], ["notanorigin"]),
    (["--allowed-origin", "http://ok.example/path"], ["http://ok.example/path"]),
    (["--heartbeat", "-5"], ["heartbeat"]),
    (["--fanout", "magic"], ["fanout"]),
    (["--api-key", "short"], ["api_key"]),
    (["--plain-history", "500"], ["plain_history"]),
    (["--redis", "http://127.0.0.1:6379"], ["redis", "redis://HOST:PORT/DB"]),
    (["--redis-prefix", "has space"], ["redis_prefix"]),
    (["--redis-timeout", "0"], ["redis_timeout"]),
    (["--presence-ttl", "0.5"], ["presence_ttl"]),
    (["--workers", "0"], ["workers", "auto"]),
    (["--workers", "-1"], ["workers"]),
    (["--workers", "abc"], ["workers", "abc"]),
])
def test_bad_flag_values(tmp_path: Path, flags: list[str], names: list[str]) -> None:
    port, args = serve_args(tmp_path)
    if flags[0] == "--port":
        args = ["serve", "--data-dir", str(tmp_path / "data"), *flags]
    else:
        args = [*args, *flags]
    assert_refused(run_hubbub(*args), 2, *names)
    assert not listening(port)
    assert not (tmp_path / "data").exists()  # nothing half-started


def test_unknown_flag(tmp_path: Path) -> None:
    port, args = serve_args(tmp_path, "--nosuch")
    line = assert_refused(run_hubbub(*args), 2, "--nosuch")
    assert "unrecognized arguments" in line
    assert not listening(port)


def test_unknown_command() -> None:
    result = run_hubbub("nosuch")
    assert_refused(result, 2, "nosuch")


def test_bad_environment_variable(tmp_path: Path) -> None:
    port, args = serve_args(tmp_path)
    args.remove("--port")
    args.remove(str(port))
    line = assert_refused(run_hubbub(*args, env={"HUBBUB_PORT": "abc"}), 2, "HUBBUB_PORT")
    assert "abc" in line


def test_bad_environment_variable_even_when_flag_overrides(tmp_path: Path) -> None:
    # A broken environment is reported rather than silently ignored.
    _, args = serve_args(tmp_path)
    assert_refused(run_hubbub(*args, env={"HUBBUB_MAX_ROOMS": "many"}), 2,
                   "HUBBUB_MAX_ROOMS")


def welcome_limits(server: ServerProcess) -> dict[str, object]:
    async def fetch() -> dict[str, object]:
        async with aiohttp.ClientSession() as session, session.ws_connect(
            server.ws_url, protocols=("hubbub.v1",)
        ) as ws:
            msg = await ws.receive(timeout=5)
            limits: dict[str, object] = json.loads(msg.data)["limits"]
            return limits

    return asyncio.run(fetch())


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hubbub.toml"
    path.write_text(text)
    return path


def test_config_file_is_used(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "from-config"
    config = write_config(tmp_path, f"""
host = "127.0.0.1"
port = {port}
data_dir = "{data_dir}"
store = "sqlite"
max_rooms = 7
rate-per-second = 3
""")
    proc = subprocess.Popen([sys.executable, "-m", "hubbub", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(1)]
        while not seen[-1].startswith("hubbub serving on") and seen[-1] and len(seen) < 50:
            seen.append(proc.stdout.readline())  # start-up log lines come first
        assert seen[-1].startswith(f"hubbub serving on http://127.0.0.1:{port}"), seen
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        assert (data_dir / "hubbub.sqlite3").exists()
        server = ServerProcess(tmp_path, port=port)
        limits = welcome_limits(server)
        assert limits["max_rooms"] == 7 and limits["rate_per_second"] == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def _limits_with(tmp_path: Path, *flags: str, env: dict[str, str] | None = None
                 ) -> dict[str, object]:
    config = write_config(tmp_path, "max_rooms = 7\nmax_text_bytes = 500\nstore = 'memory'\n")
    server = ServerProcess(tmp_path / "data", "--config", str(config), *flags, env=env)
    server.start()
    try:
        return welcome_limits(server)
    finally:
        assert server.stop() == 0


def test_flag_overrides_config_file(tmp_path: Path) -> None:
    limits = _limits_with(tmp_path, "--max-rooms", "9")
    assert limits["max_rooms"] == 9 and limits["max_text_bytes"] == 500


def test_environment_overrides_config_file(tmp_path: Path) -> None:
    limits = _limits_with(tmp_path, env={"HUBBUB_MAX_ROOMS": "8"})
    assert limits["max_rooms"] == 8 and limits["max_text_bytes"] == 500


def test_flag_overrides_environment(tmp_path: Path) -> None:
    limits = _limits_with(tmp_path, "--max-rooms", "9", env={"HUBBUB_MAX_ROOMS": "8"})
    assert limits["max_rooms"] == 9


@pytest.mark.parametrize(("text", "names"), [
    (None, ["does not exist"]),
    ("port = = 5\n", ["not valid TOML"]),
    ("[section\n", ["not valid TOML"]),
    ("nosuch = 1\n", ["nosuch"]),
    ("port = \"abc\"\n", ["port"]),
    ("max_rooms = 1.5\n", ["max_rooms"]),
    ("max_rooms = true\n", ["max_rooms"]),
    ("store = 5\n", ["store"]),
    ("allowed_origins = [\"nope\"]\n", ["nope"]),
    ("dev = \"maybe\"\n", ["dev"]),
    ("\xff\xfe", ["hubbub.toml"]),
])
def test_bad_config_file(tmp_path: Path, text: str | None, names: list[str]) -> None:
    path = tmp_path / "hubbub.toml"
    if text is not None:
        path.write_bytes(text.encode("latin-1"))
    port, args = serve_args(tmp_path, "--config", str(path))
    line = assert_refused(run_hubbub(*args), 2, *names)
    assert "config" in line or str(path) in line
    assert not listening(port)


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_hubbub("serve", "--host", "127.0.0.1", "--port", str(port),
                            "--store", "memory", "--data-dir", str(tmp_path / "d"))
    line = assert_refused(result, 1, str(port))
    assert "listen" in line


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    port = free_port()
    result = run_hubbub("serve", "--host", "127.0.0.1", "--port", str(port),
                        "--data-dir", str(blocker / "data"))
    assert result.returncode != 0
    lines = message_lines(result.stderr)
    assert len(lines) == 1 and "a-file" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "hubbub serving on" not in result.stdout
    assert not listening(port)


HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == {missing!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Hide())
from hubbub.cli import main
sys.exit(main({argv!r}))
"""
"""Runs `hubbub` as if `missing` were not installed."""


@pytest.mark.parametrize(("missing", "argv", "code"), [
    ("numpy", ["bench", "--subscribers", "1"], 1),
    ("matplotlib", ["bench", "--subscribers", "1", "--plot", "out.png"], 2),
    ("websockets", ["bench", "--subscribers", "1", "--server", "websockets"], 2),
])
def test_bench_without_its_extra_says_what_to_install(missing: str, argv: list[str],
                                                       code: int, tmp_path: Path) -> None:
    script = HIDE.format(missing=missing, argv=argv)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert missing in result.stderr and "pip install 'hubbub[bench]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()


def help_text(*command: str) -> str:
    result = run_hubbub(*command, "--help", env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # argparse's line wrapping undone


def test_serve_help_shows_each_default_unit_and_variable_from_the_settings_table() -> None:
    text = help_text("serve")
    defaults = Settings()
    units = {"BYTES": "bytes", "SECONDS": "s", "MS": "ms"}
    for option in OPTIONS:
        metavar = f" {option.metavar}" if option.flag_action != "store_true" else ""
        entry = f"{option.flag}{metavar} {option.help} [default: "
        assert entry in text, entry
        shown, _, env = text.split(entry, 1)[1].partition("; ")
        assert env.startswith(f"env {option.env}]"), (option.name, env[:40])
        # What the help says parses back to the dataclass default.
        value, *unit = shown.split(" ")
        expected = getattr(defaults, option.name)
        if value == "none":
            assert expected in (None, ()), option.name
        elif value in ("on", "off"):
            assert expected is (value == "on"), option.name
        else:
            assert option.parse(value) == expected, (option.name, shown)
        if option.metavar in units and value != "none":
            assert unit[:1] == [units[option.metavar]], (option.name, shown)
    assert "[default: 65536 bytes (64 KiB); env HUBBUB_MAX_FRAME_BYTES]" in text
    assert "[default: 50; env HUBBUB_RATE_PER_SECOND]" in text
    assert "[default: sqlite; env HUBBUB_STORE]" in text


def test_other_commands_help_shows_defaults() -> None:
    assert "--timeout TIMEOUT seconds to wait for the server (default: 10)" in help_text(
        "publish")
    assert "--room ROOM room to join first (default: lobby)" in help_text("chat")
    window = show_default(setting("commit_window_ms"))
    assert window == f"{Settings().commit_window_ms:g} ms"
    assert f"(default: the server's, {window})" in help_text("bench-acks")
    bench = help_text("bench")
    assert f"fan-out strategy (default: {Settings().fanout})" in bench
    assert "receive every message (default: 100)" in bench
