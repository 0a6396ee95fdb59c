"""Run the real `python -m hubbub` as a user would, and check how it refuses bad settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def run_hubbub(*args: str, env: dict[str, str] | None = None,
               timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubbub", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def message_lines(stderr: str) -> list[str]:
    """stderr without argparse's usage block (its first line and indented continuations)."""
    lines = []
    in_usage = False
    for line in stderr.splitlines():
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        if line.strip():
            lines.append(line)
    return lines


def assert_refused(result: subprocess.CompletedProcess[str], code: int, *names: str) -> str:
    """`result` exited with `code` and one line on stderr naming each of `names`; the line."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = message_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert "hubbub serving on" not in result.stdout
    return lines[0]
