#!/usr/bin/env bash
# The whole test suite; installs what it needs first. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export TRANSFERKIT_QUIET=1
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"
