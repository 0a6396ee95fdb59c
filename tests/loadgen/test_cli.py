"""`python -m hubbub.loadgen` refuses bad flags with exit code 2 and one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hubbub.loadgen.__main__ import main
from support.server import free_port


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hubbub.loadgen", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "-5"], "--rate"),
    (["--rate", "0"], "--rate"),
    (["--rate", "nan"], "--rate"),
    (["--rate", "inf"], "--rate"),
    (["--rate", "1e400"], "--rate"),
    (["--rate", "lots"], "not a number"),
    (["--subscribers", "0"], "--subscribers"),
    (["--subscribers", "-1"], "--subscribers"),
    (["--subscribers", "10000000"], "--subscribers"),
    (["--subscribers", "1.5"], "not an integer"),
    (["--sweep", "100,50"], "increasing"),
    (["--sweep", "100,,200"], "--sweep"),
    (["--sweep", "1,-2"], "--sweep"),
    (["--sweep", ",".join(str(n) for n in range(1, 100))], "at most"),
    (["--size", "10"], "--size"),
    (["--size", "99999999"], "--size"),
    (["--duration", "0"], "--duration"),
    (["--warmup", "-1"], "--warmup"),
    (["--workers", "0"], "--workers"),
    (["--p99-budget-ms", "0"], "--p99-budget-ms"),
    (["--url", "http://127.0.0.1:1/ws"], "ws://"),
    (["--url", "ws://127.0.0.1:70000/ws"], "port"),
    (["--url", "ws://127.0.0.1/ a"], "spaces"),
    (["--fanout", "fastest"], "--fanout"),
    (["--url", "ws://127.0.0.1:1/ws", "--compare"], "drop --url"),
    (["--url", "ws://127.0.0.1:1/ws", "--idle", "10"], "drop --url"),
    (["--compare", "--fanout", "auto"], "--compare"),
    (["--compare-with", "x {port}"], "--compare"),
    (["--compare", "--compare-with", "no-port-here"], "{port}"),
    (["--server", "note", "--fanout", "auto"], "--server hubbub"),
    (["--idle", "5", "--stalled", "1"], "cannot be combined"),
    (["--plot", "out.txt"], ".png"),
    (["--plot", "/nonexistent-dir/out.png"], "does not exist"),
    (["--compare-path", "ws"], "--compare-path"),
])
def test_bad_flags_exit_2_with_a_message(args: list[str], message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # In-process, for speed: every case here is refused before any process or socket exists.
    code: int | str | None
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, err
    assert message in err
    assert out == ""


def test_a_bad_flag_in_a_real_process_prints_no_traceback() -> None:
    result = bench("--subscribers", "0")
    assert result.returncode == 2
    assert "--subscribers: must be between 1 and" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_url_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    result = bench("--url", f"ws://127.0.0.1:{port}/ws", "--subscribers", "1", "--duration", "1")
    assert result.returncode == 2
    assert f"cannot connect to ws://127.0.0.1:{port}/ws" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_flags() -> None:
    result = bench("--help")
    assert result.returncode == 0
    for flag in ("--subscribers", "--sweep", "--stalled", "--idle", "--compare", "--json"):
        assert flag in result.stdout
