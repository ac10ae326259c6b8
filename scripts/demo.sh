#!/usr/bin/env bash
# The main job on the bundled default data; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
python -c "from transferkit.data import write_sample_photos; write_sample_photos('$OUT/photos')"
echo "== ImageNet top-5 for the bundled photos"
transferkit classify "$OUT/photos"
echo "== embed the bundled photos"
transferkit embed "$OUT/photos" -o "$OUT/photos.parquet"
