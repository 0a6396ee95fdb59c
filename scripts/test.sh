#!/usr/bin/env bash
# Install everything the tests need (Debian chromium, tmux, iproute2, curl, e2fsprogs's
# chattr and util-linux's prlimit, and redis-server unless one is on PATH; Python packages
# into .venv, again only when pyproject.toml changed), then run them all: ruff, mypy, pytest.
# Extra arguments go to pytest.
source "$(dirname "$0")/_env.sh"
apt_install chromium tmux iproute2 curl e2fsprogs util-linux
# The Redis tests start private redis-servers of their own (tests/support/redis.py) and
# never use a system-wide one, so any redis-server on PATH will do.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
pip_install_once '.[test]' .hubbub-installed-test
echo "== ruff"
.venv/bin/ruff check src tests benchmarks examples scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest -q "$@"
