"""Cost of looking inside EfficientNet-Lite0 on CPU: activation maximisation of a class and
PGD attacks, next to the baseline of one plain classification of the same photo.

    .venv/bin/python benchmarks/bench_explain.py            (tabby: 32 steps; PGD: 10 steps)
    .venv/bin/python benchmarks/bench_explain.py --quick

Each row says whether the result did what it must (ideal tabby re-classified as tabby from
its 8-bit PNG; coffee -> tabby adversarial at 8/255). Timings are noisy on a shared CPU.
"""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from transferkit.backbones import create
from transferkit.data import sample_photo
from transferkit.explain import attack, classify_image, visualize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32, help="visualisation steps")
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.pgd_steps = 24, 5
    model = create("efficientnet_lite0")
    coffee = sample_photo("coffee")
    classify_image(model, coffee)  # warm-up
    rows = []
    start = time.perf_counter()
    top = classify_image(model, coffee, 1)[0]
    rows.append(("baseline: classify coffee", time.perf_counter() - start, f"{top[0]}"))
    start = time.perf_counter()
    vis = visualize(model, "class:tabby", steps=args.steps, show_progress=False)
    elapsed = time.perf_counter() - start
    buf = io.BytesIO()
    vis.image.save(buf, format="PNG")
    top = classify_image(model, Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), 1)[0]
    rows.append((f"visualize class:tabby ({args.steps} steps)", elapsed,
                 f"PNG seen as {top[0].split(',')[0]} {top[1]:.0%}"))
    for target in ("tabby", None):
        start = time.perf_counter()
        res = attack(model, coffee, target, "pgd", "8/255", args.pgd_steps, show_progress=False)
        rows.append((f"pgd {target or 'untargeted'} eps 8/255 ({args.pgd_steps} steps)",
                     time.perf_counter() - start,
                     f"{res.adversarial_top1[0].split(',')[0]} {res.adversarial_top1[1]:.0%}"
                     f" success={res.success}"))
    print(f"{'task':45s} {'seconds':>8s}  result")
    for name, seconds, result in rows:
        print(f"{name:45s} {seconds:8.2f}  {result}")


if __name__ == "__main__":
    main()
