"""Feature visualisation before/after (issue 18) and PGD attacks on EfficientNet-Lite0, CPU.

    .venv/bin/python benchmarks/bench_explain.py              (3 classes x 3 seeds, defaults)
    .venv/bin/python benchmarks/bench_explain.py --seeds 1 --quick

For the old defaults (`OLD_DEFAULTS`: 64 steps, lr 0.4) and the new ones, in the same run:
target top-1 rate from the SAVED PNG (reloaded through the normal preprocessing), share of
saturated pixels (a channel <= 3 or >= 252), mean absolute neighbour difference as a multiple
of scikit-image's photos (chelsea, coffee, astronaut) at the same 256 px, seconds per image
and steps per second. Baseline: one plain classification of the coffee photo. Timings on a
shared CPU are pessimistic: compare steps/s, not seconds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image

from transferkit.backbones import create
from transferkit.data import sample_photo
from transferkit.explain import (
    OLD_DEFAULTS,
    attack,
    classify_image,
    neighbour_difference,
    saturated_fraction,
    visualize,
)

CLASSES = ("tabby", "zebra", "espresso")


def photo_difference(size: int) -> float:
    """Mean neighbour difference of the natural photos at ``size`` px (the reference)."""
    photos = [sample_photo(n).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
              for n in ("chelsea", "coffee", "astronaut")]
    return statistics.mean(neighbour_difference(p) for p in photos)


def reloaded(image: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def run_settings(model, name: str, settings: dict, seeds: int, reference: float,
                 save_dir: Path | None) -> dict:
    hits, sats, diffs, secs, probs = 0, [], [], [], []
    steps = settings.get("steps", 256)
    for cls in CLASSES:
        for seed in range(seeds):
            start = time.perf_counter()
            vis = visualize(model, f"class:{cls}", seed=seed, show_progress=False, **settings)
            secs.append(time.perf_counter() - start)
            png = reloaded(vis.image)
            if save_dir is not None:
                png.save(save_dir / f"{name}-{cls}-{seed}.png")
            label, p = classify_image(model, png, 1)[0]
            hits += label.split(",")[0] == cls
            probs.append(p if label.split(",")[0] == cls else 0.0)
            sats.append(saturated_fraction(png))
            diffs.append(neighbour_difference(png) / reference)
            print(f"  {name} {cls} seed {seed}: {label.split(',')[0]} {p:.0%}, saturated "
                  f"{sats[-1]:.1%}, neighbour diff {diffs[-1]:.2f}x, {secs[-1]:.1f} s",
                  flush=True)
    n = len(CLASSES) * seeds
    return {"name": name, "top1": hits / n, "n": n, "saturated": statistics.mean(sats),
            "worst_saturated": max(sats), "diff": statistics.mean(diffs),
            "worst_diff": max(diffs), "seconds": statistics.mean(secs),
            "steps_per_s": steps / statistics.mean(secs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per class")
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 PGD steps")
    parser.add_argument("--save", type=Path, default=Path("out/bench-explain"),
                        help="where the PNGs go (look at them)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.pgd_steps = 1, 5
    args.save.mkdir(parents=True, exist_ok=True)
    model = create("efficientnet_lite0")
    coffee = sample_photo("coffee")
    classify_image(model, coffee)  # warm-up
    start = time.perf_counter()
    top = classify_image(model, coffee, 1)[0]
    print(f"baseline: classify coffee {time.perf_counter() - start:.2f} s ({top[0]})")
    reference = photo_difference(model.preprocessing.resize_size)
    print(f"photos' neighbour difference at {model.preprocessing.resize_size} px: "
          f"{reference:.1f} grey levels")
    rows = [run_settings(model, "before", dict(OLD_DEFAULTS), args.seeds, reference, args.save),
            run_settings(model, "after", {}, args.seeds, reference, args.save)]
    print(f"\n{'defaults':8s} {'top-1':>9s} {'saturated':>14s} {'nbr diff':>14s} "
          f"{'s/image':>8s} {'steps/s':>8s}   (targets: >=90%, <=10%, <=2.00x)")
    for r in rows:
        print(f"{r['name']:8s} {r['top1']:5.0%} n={r['n']:<2d} {r['saturated']:6.1%} "
              f"(max {r['worst_saturated']:5.1%}) {r['diff']:5.2f}x (max {r['worst_diff']:4.2f})"
              f" {r['seconds']:8.1f} {r['steps_per_s']:8.1f}")
    for target in ("tabby", None):
        start = time.perf_counter()
        res = attack(model, coffee, target, "pgd", "8/255", args.pgd_steps, show_progress=False)
        print(f"pgd {target or 'untargeted'} eps 8/255 ({args.pgd_steps} steps): "
              f"{time.perf_counter() - start:.2f} s, {res.adversarial_top1[0].split(',')[0]} "
              f"{res.adversarial_top1[1]:.0%} success={res.success}")


if __name__ == "__main__":
    main()
