#!/usr/bin/env bash
# Install hubbub into .venv and run the server: bash scripts/serve.sh [hubbub serve flags]
source "$(dirname "$0")/_env.sh"
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/hubbub serve "$@"
