#!/usr/bin/env bash
# The main job on the bundled default data; installs what it needs first.
# Outputs (tables, PNG reports, model, index) land in out/demo (OUT=... to change).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-out/demo}
DATA=tests/fixtures/fashion-mini   # 10 Fashion-MNIST classes x 12 images, committed
mkdir -p "$OUT"
python -c "from transferkit.data import write_sample_photos; write_sample_photos('$OUT/photos')"

echo "== 1. ImageNet top-5 for the bundled photos"
transferkit classify "$OUT/photos"

echo "== 2. embed the bundled photos"
transferkit embed "$OUT/photos" -o "$OUT/photos.parquet"

echo "== 3. which strategy suits the labelled fixture, and a classifier trained on it"
transferkit advise "$DATA" --image-size 64
transferkit train "$DATA" --strategy logreg --image-size 64 -o "$OUT/fashion-model"
transferkit predict "$OUT/fashion-model" "$DATA/Sneaker/train_00006.png" "$DATA/Bag/train_00023.png" -k 2

echo "== 4. similar-image search over photos + fixture, queried with a sneaker"
transferkit index build "$OUT/photos" "$DATA" -o "$OUT/images.tkindex"
transferkit search "$OUT/images.tkindex" "$DATA/Sneaker/train_00006.png" -k 5 \
  --sheet "$OUT/search-sneaker.png"

echo "== 5. segmentation: Tux Paint stamps pasted on photos (generated, never committed), a U-Net"
echo "      on the frozen Lite0 encoder, masks for the unseen test stamps on unseen scenes"
transferkit data segmentation "$OUT/dense-data" --train 160 --val 40 --test 40 --size 128
transferkit segment train "$OUT/dense-data/train" --val "$OUT/dense-data/val" \
  --test "$OUT/dense-data/test" --binary --image-size 128 --epochs 6 -o "$OUT/segmenter"
transferkit segment predict "$OUT/segmenter" "$OUT"/dense-data/test/images/0000[0-3].* \
  -o "$OUT/segment-predict"

echo "== done: see $OUT (fashion-model/report/*.png, search-sneaker.png, segmenter/report/*.png)"
echo "   web app: .venv/bin/transferkit serve --model $OUT/fashion-model --model $OUT/segmenter --index $OUT/images.tkindex"
echo "   lab gallery (a few minutes): .venv/bin/transferkit gallery -o out/gallery"
