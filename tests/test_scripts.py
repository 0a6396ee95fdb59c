"""scripts/serve.sh and scripts/test.sh install into .venv only when it is new or out of date.

Each test runs the real scripts in a temporary copy of the checkout whose `.venv` holds fake
`pip` and `hubbub` programs that only record how they were called: no network, no real install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and coreutils")

RECORDER = """#!/bin/sh
if [ -e "$0.fail" ]; then echo "$(basename "$0") failed" >&2; exit 1; fi
echo "$(basename "$0") $*" >> "$(dirname "$0")/../calls.log"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the scripts and pyproject.toml, with a .venv of recording fakes."""
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "pip", "hubbub"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run(checkout: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # PYTHON is the fake too, so that _env.sh's "is Python 3.11 there?" check passes without
    # looking at (or installing) the machine's Python.
    env = {**os.environ, "PYTHON": str(checkout / ".venv" / "bin" / "python")}
    return subprocess.run(["bash", *command], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def calls(checkout: Path, program: str) -> list[str]:
    log = checkout / ".venv" / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.split()[0] == program]


def serve(checkout: Path) -> subprocess.CompletedProcess[str]:
    result = run(checkout, "scripts/serve.sh", "--port", "9000")
    assert result.returncode == 0, result.stderr
    return result


def test_serve_installs_on_first_start_only(checkout: Path) -> None:
    first = serve(checkout)
    assert "installing hubbub (.) into .venv" in first.stdout
    assert calls(checkout, "pip") == ["pip install -q --disable-pip-version-check -e ."]

    second = serve(checkout)
    assert "installing" not in second.stdout
    assert len(calls(checkout, "pip")) == 1  # not invoked again
    assert calls(checkout, "hubbub") == ["hubbub serve --port 9000"] * 2


def test_serve_reinstalls_when_pyproject_changes(checkout: Path) -> None:
    serve(checkout)
    with (checkout / "pyproject.toml").open("a") as f:
        f.write("\n# a new dependency, say\n")
    assert "installing" in serve(checkout).stdout
    assert len(calls(checkout, "pip")) == 2
    serve(checkout)
    assert len(calls(checkout, "pip")) == 2


def test_failed_install_is_retried(checkout: Path) -> None:
    fail = checkout / ".venv" / "bin" / "pip.fail"
    fail.touch()
    result = run(checkout, "scripts/serve.sh")
    assert result.returncode != 0 and "pip failed" in result.stderr
    assert calls(checkout, "hubbub") == []  # no server on a half-installed .venv
    fail.unlink()
    serve(checkout)
    assert len(calls(checkout, "pip")) == 1


def test_stamp_lives_in_venv_and_test_extra_has_its_own(checkout: Path) -> None:
    serve(checkout)
    assert [p.name for p in checkout.iterdir() if p.name.startswith(".hubbub")] == []
    # test.sh's install of '.[test]' is not satisfied by serve.sh's install of '.' ...
    source = ". scripts/_env.sh && pip_install_once '.[test]' .hubbub-installed-test"
    first = run(checkout, "-c", source)
    assert first.returncode == 0, first.stderr
    assert calls(checkout, "pip")[-1].endswith("-e .[test]")
    # ... but it is skipped the second time, and does not make serve.sh install again.
    assert "installing" not in run(checkout, "-c", source).stdout
    serve(checkout)
    assert len(calls(checkout, "pip")) == 2
    # A new .venv (no stamp) installs everything again.
    for stamp in (checkout / ".venv").glob(".hubbub-installed*"):
        stamp.unlink()
    run(checkout, "-c", source)
    serve(checkout)
    assert len(calls(checkout, "pip")) == 4
