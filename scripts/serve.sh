#!/usr/bin/env bash
# Install hubbub into .venv and run the server: bash scripts/serve.sh [hubbub serve flags]
# (pip runs only on the first start and after pyproject.toml changes; see _env.sh)
source "$(dirname "$0")/_env.sh"
pip_install_once . .hubbub-installed
exec .venv/bin/hubbub serve "$@"
