"""Dense prediction on Tux Paint composites: segmentation (and localisation) rows with their
floors measured in the same run, seeds fixed.

    .venv/bin/python benchmarks/bench_dense.py                 # the README row
    .venv/bin/python benchmarks/bench_dense.py --quick         # a smoke run (~2 min)

Data: ``write_composites`` (Tux Paint stamps on real photos; the test split holds unseen
stamps on unseen backgrounds), generated under --out at run time and never committed
(GPL-2). Foreground = any stamp (binary masks). Rows:

* floors: the mean training box as a mask; a border-colour model (pixels whose colour is far
  from the median colour of the image border are foreground; its one distance cut is picked
  on the training images, nothing else is learnt);
* EfficientNet-Lite0 frozen + U-Net for each un-pooling kind (nearest, transposed,
  maxunpool);
* the best kind with the top blocks fine-tuned after the frozen phase;
* the same U-Net + Lite0 architecture from random initialisation, trained whole with
  augmentation for the wall-clock seconds the best frozen row took;
* localisation rows from ``transferkit.dense.localize.benchmark_rows`` when it is installed.

Timings are wall seconds on this machine; numbers taken while other jobs load the CPU are
pessimistic (the load average is printed in the header).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones import create
from transferkit.dense import load_pair, load_segmentation_folder, write_composites
from transferkit.dense.segment import SegmentationModel, segmentation_metrics
from transferkit.runtime import cpu_model
from transferkit.utils import inference_threads

COLUMNS = [("foreground_iou", "fg IoU/img"), ("foreground_iou_dataset", "fg IoU/set"),
           ("dice", "Dice"), ("pixel_accuracy", "pixel acc"), ("miou", "mIoU"),
           ("box_iou", "box IoU"), ("accuracy_iou50", "acc@0.5"), ("accuracy_iou75", "acc@0.75"),
           ("class_accuracy", "class acc"), ("correct_localisation", "correct loc"),
           ("training_s", "train s"), ("ms_per_image", "ms/img"), ("parameters", "params"),
           ("trained_parameters", "trained")]


# -- floors -----------------------------------------------------------------------------------

def truths(data) -> list[np.ndarray]:
    return [load_pair(s, 255, binary=True)[1] for s in data.samples]


def images_of(data) -> list[np.ndarray]:
    return [np.asarray(load_pair(s, 255, binary=True)[0]) for s in data.samples]


def mean_box_masks(train_masks: list[np.ndarray], test_masks: list[np.ndarray]
                   ) -> list[np.ndarray]:
    """The mean training box (relative to the image size) drawn as a mask on every image."""
    from torchvision.ops import masks_to_boxes

    boxes = []
    for mask in train_masks:
        fg = torch.from_numpy(mask == 1)
        if fg.any():
            x0, y0, x1, y1 = masks_to_boxes(fg[None])[0].tolist()
            h, w = mask.shape
            boxes.append((x0 / w, y0 / h, (x1 + 1) / w, (y1 + 1) / h))
    x0, y0, x1, y1 = np.mean(boxes, axis=0)
    out = []
    for mask in test_masks:
        h, w = mask.shape
        box = np.zeros((h, w), np.uint8)
        box[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)] = 1
        out.append(box)
    return out


def border_distance(image: np.ndarray, width: int = 4) -> np.ndarray:
    """Per-pixel RGB distance to the median colour of the image's border band."""
    pixels = image.astype(np.float32)
    band = np.concatenate([pixels[:width].reshape(-1, 3), pixels[-width:].reshape(-1, 3),
                           pixels[:, :width].reshape(-1, 3), pixels[:, -width:].reshape(-1, 3)])
    return np.linalg.norm(pixels - np.median(band, axis=0), axis=-1)


def border_colour_cut(train_images, train_masks) -> float:
    """The one distance cut with the best training foreground IoU over the set."""
    distances = [border_distance(im) for im in train_images]
    best, best_iou = 0.0, -1.0
    for cut in np.arange(10, 200, 5):
        iou = segmentation_metrics([(d > cut).astype(np.uint8) for d in distances], train_masks,
                                   ["background", "foreground"])["foreground_iou_dataset"]
        if iou > best_iou:
            best, best_iou = float(cut), iou
    return best


# -- rows -------------------------------------------------------------------------------------

def floor_row(name: str, predicted, test_masks, ms: float) -> dict[str, Any]:
    metrics = segmentation_metrics(predicted, test_masks, ["background", "foreground"])
    return {"method": name, **pick(metrics), "training_s": 0.0, "ms_per_image": round(ms, 2),
            "parameters": 0, "trained_parameters": 0}


def pick(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k, _ in COLUMNS if k in metrics and isinstance(metrics[k], float)}


def model_row(name: str, model: SegmentationModel, test, report: Path | None = None
              ) -> dict[str, Any]:
    metrics = model.evaluate(test, report=report)
    counts = model.parameter_count()
    return {"method": name, **pick(metrics), "training_s": round(model.training_seconds_, 1),
            "ms_per_image": round(metrics["ms_per_image"], 2), "parameters": counts["total"],
            "trained_parameters": counts["trained"], "epochs": len(model.history_),
            "threshold": model.threshold_}


def fit(backbone, train, val, **params) -> SegmentationModel:
    return SegmentationModel(backbone, **params).fit(train, val)


def format_table(rows: list[dict[str, Any]]) -> str:
    shown = [(k, label) for k, label in COLUMNS if any(r.get(k) is not None for r in rows)]
    header = "| method | " + " | ".join(label for _, label in shown) + " |"
    lines = [header, "|---" * (len(shown) + 1) + "|"]
    for row in rows:
        cells = []
        for key, _ in shown:
            value = row.get(key)
            if value is None:
                cells.append("-")
            elif key in ("parameters", "trained_parameters"):
                cells.append(f"{value / 1e6:.2f} M" if value else "0")
            elif key in ("training_s", "ms_per_image"):
                cells.append(f"{value:.1f}")
            else:
                cells.append(f"{value:.3f}")
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def localisation_rows(root: Path, backbone, seed: int, segmenter) -> list[dict[str, Any]]:
    """denseloc's rows when ``transferkit.dense.localize`` is installed, else none."""
    try:
        from transferkit.dense.localize import benchmark_rows
    except ImportError:
        print("(localisation rows skipped: transferkit.dense.localize not installed)")
        return []
    from transferkit.dense import load_boxes

    splits = [load_boxes(root / split / "boxes.csv") for split in ("train", "val", "test")]
    return benchmark_rows(*splits, backbone=backbone, seed=seed, segmenter=segmenter)


# -- main -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench_dense"))
    parser.add_argument("--n-train", type=int, default=800)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--size", type=int, default=160, help="Composite size in pixels.")
    parser.add_argument("--image-size", type=int, default=160, help="Model input size.")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--fine-tune-blocks", type=int, default=2)
    parser.add_argument("--fine-tune-epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-localisation", action="store_true")
    parser.add_argument("--quick", action="store_true", help="120/40/40 images, 4 epochs")
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_val, args.n_test, args.epochs, args.fine_tune_epochs = \
            120, 40, 40, 4, 2
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    threads = inference_threads()
    print(f"# bench_dense: {cpu_model()}, {threads} torch thread(s), load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, torch {torch.__version__}, "
          f"{platform.python_version()}")
    data_dir = args.out / "data"
    write_composites(data_dir, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                     size=args.size, seed=args.seed)
    train, val, test = (load_segmentation_folder(data_dir / s, binary=True)
                        for s in ("train", "val", "test"))
    print(f"# data: {len(train)} train / {len(val)} val / {len(test)} test composites at "
          f"{args.size} px (test: unseen stamps on unseen backgrounds), model input "
          f"{args.image_size} px; generated in {time.perf_counter() - start:.0f} s")

    train_masks, test_masks = truths(train), truths(test)
    rows = []
    t0 = time.perf_counter()
    mean_masks = mean_box_masks(train_masks, test_masks)
    rows.append(floor_row("floor: mean training box as mask", mean_masks, test_masks,
                          1000 * (time.perf_counter() - t0) / len(test_masks)))
    cut = border_colour_cut(images_of(train), train_masks)
    t0 = time.perf_counter()
    border = [(border_distance(im) > cut).astype(np.uint8) for im in images_of(test)]
    rows.append(floor_row(f"floor: border colour (distance > {cut:.0f})", border, test_masks,
                          1000 * (time.perf_counter() - t0) / len(test_masks)))
    print(format_table(rows), flush=True)

    backbone = create("efficientnet_lite0")
    common = dict(image_size=args.image_size, epochs=args.epochs, seed=args.seed,
                  threads=threads)
    models: dict[str, SegmentationModel] = {}
    for kind in ("nearest", "transposed", "maxunpool"):
        models[kind] = fit(backbone, train, val, unpool=kind, **common)
        rows.append(model_row(f"Lite0 frozen + U-Net ({kind})", models[kind], test,
                              args.out / f"report-{kind}"))
        print(f"  {rows[-1]['method']}: fg IoU {rows[-1]['foreground_iou']:.3f} in "
              f"{rows[-1]['training_s']:.0f} s", flush=True)
    best_kind = max(models, key=lambda k: next(r["foreground_iou"] for r in rows
                                               if r["method"].endswith(f"({k})")))
    budget = models[best_kind].training_seconds_
    tuned = fit(backbone, train, val, unpool=best_kind, fine_tune_blocks=args.fine_tune_blocks,
                fine_tune_epochs=args.fine_tune_epochs, **common)
    rows.append(model_row(f"Lite0 + U-Net ({best_kind}), top {args.fine_tune_blocks} blocks "
                          f"fine-tuned", tuned, test, args.out / "report-finetuned"))
    print(f"  {rows[-1]['method']}: fg IoU {rows[-1]['foreground_iou']:.3f}", flush=True)
    scratch = fit(create("efficientnet_lite0", pretrained=False), train, val, unpool=best_kind,
                  pretrained=False, fine_tune_blocks="all", max_seconds=budget,
                  **dict(common, epochs=1000), patience=1000)
    rows.append(model_row(f"same U-Net, random init, {budget:.0f} s (= best frozen row)",
                          scratch, test, args.out / "report-random-init"))
    print(f"  {rows[-1]['method']}: fg IoU {rows[-1]['foreground_iou']:.3f}", flush=True)
    if not args.no_localisation:
        rows += localisation_rows(data_dir, backbone, args.seed, models[best_kind])

    frozen = max(r["foreground_iou"] for r in rows if "frozen + U-Net" in r["method"])
    floor = rows[1]["foreground_iou"]
    gain = frozen - next(r["foreground_iou"] for r in rows if "random init" in r["method"])
    total = time.perf_counter() - start
    print()
    print(format_table(rows))
    print()
    print(f"targets: frozen Lite0 U-Net fg IoU {frozen:.3f} (>= 0.80: "
          f"{'met' if frozen >= 0.80 else 'MISSED'}), {frozen - floor:+.3f} over the border "
          f"floor (>= +0.20: {'met' if frozen - floor >= 0.20 else 'MISSED'}), "
          f"{gain:+.3f} over random init at equal wall-clock (>= +0.15: "
          f"{'met' if gain >= 0.15 else 'MISSED'}); whole benchmark {total / 60:.1f} min "
          f"(< 20: {'met' if total < 1200 else 'MISSED'})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(
        {"rows": rows, "total_seconds": total, "cpu": cpu_model(), "threads": threads,
         "args": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    print(f"results in {args.out / 'results.json'}; reports (contact sheets, curves) in "
          f"{args.out}/report-*")


if __name__ == "__main__":
    main()
