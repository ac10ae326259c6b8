#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian data packages, a virtualenv in .venv,
# and the package with every extra. Re-running is cheap: a stamp records what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="dataset-fashion-mnist tuxpaint-stamps-default tuxpaint-data fortunes fortunes-min chromium chromium-driver espeak-ng flite"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "[install] apt packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp_src=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ "$(cat .venv/.install-stamp 2>/dev/null)" != "$stamp_src" ]; then
  echo "[install] pip packages into .venv (first run takes several minutes: torch is large)"
  .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
  .venv/bin/pip install -q -e ".[all]"
  # The opt-in speech encoder (tests/test_audio.py uses it): models only, no dependencies.
  # Licence wording is mixed (Apache-2.0 credit vs CC BY-NC-SA 4.0): see docs/audio.md.
  .venv/bin/pip install -q --no-deps openwakeword==0.5.1
  echo "$stamp_src" > .venv/.install-stamp
fi
