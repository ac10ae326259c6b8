"""Embedding throughput from JPEG files on disk: ours vs plain eager timm, side by side.

Run:  .venv/bin/python benchmarks/bench_embed.py            (about 4 minutes on 2 idle cores)
      .venv/bin/python benchmarks/bench_embed.py --quick    (fewer images, one round)

Data: a folder of realistic JPEGs made once (cached under ``cache_dir("bench")``): random crops
of scikit-image's bundled photos (astronaut, coffee, chelsea, rocket, retina, Hubble deep field,
motorcycles, ...) and Tux Paint stamps pasted onto photo crops, resized so the long side is
500-1000 px and saved as quality-90 JPEG, like phone/web photos.

Rows (every configuration measured in the same run, rounds interleaved so background load
hits all of them alike; the table shows the best round's images/s and the median images per
CPU-second of the process, which other jobs on the machine barely change):

* baseline: plain eager timm as a user writes it: PIL full-size decode, timm's eval transform,
  ``model(batch)`` at batch 32, one loop, default torch threads;
* ours (torch / onnx engine): ``transferkit.features.embed_paths`` (reduced-size JPEG decode in
  a thread pool overlapping the model; channels_last for torch; ONNX Runtime, one
  single-threaded session call per core, each on part of a batch);
* model-only: the same networks on pre-made normalised batches of 32 (no files);
* decode-only: our decoders alone (files -> uint8 batches), for the CPU budget line;
* FLOP bound: measured float32 matmul GFLOP/s of this machine / model GFLOPs per image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

DATA_VERSION = "v1"


# -- data -----------------------------------------------------------------------------------
def _skimage_photos() -> list:
    import skimage.data
    from PIL import Image

    names = ["astronaut", "coffee", "chelsea", "rocket", "retina", "hubble_deep_field",
             "immunohistochemistry", "camera", "coins", "moon", "brick", "grass", "gravel"]
    photos = [Image.fromarray(getattr(skimage.data, n)()).convert("RGB") for n in names]
    left, right = skimage.data.stereo_motorcycle()[:2]
    return photos + [Image.fromarray(left).convert("RGB"), Image.fromarray(right).convert("RGB")]


def _stamps(rng: np.random.Generator, limit: int = 120) -> list[Path]:
    root = Path("/usr/share/tuxpaint/stamps")
    files = sorted(root.glob("**/*.png")) if root.is_dir() else []
    if not files:
        return []
    picks = rng.choice(len(files), size=min(limit * 3, len(files)), replace=False)
    return [files[i] for i in picks][:limit * 3]


def make_photo_folder(dest: Path, count: int = 256, seed: int = 0) -> list[Path]:
    """Write ``count`` realistic JPEGs (500-1000 px long side) to ``dest`` once; list them."""
    from PIL import Image

    marker = dest / f".complete-{count}"
    if marker.exists():
        return sorted(dest.glob("*.jpg"))
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = _skimage_photos()
    stamps = [p for p in _stamps(rng) if min(Image.open(p).size) >= 120][:120]
    for i in range(count):
        base = photos[int(rng.integers(len(photos)))]
        w, h = base.size
        frac = rng.uniform(0.5, 1.0)
        cw, ch = max(64, int(w * frac)), max(64, int(h * rng.uniform(0.5, 1.0)))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = base.crop((x0, y0, x0 + cw, y0 + ch))
        if stamps and rng.random() < 0.4:  # a clip-art object on a photo background
            stamp = Image.open(stamps[int(rng.integers(len(stamps)))]).convert("RGBA")
            scale = rng.uniform(0.4, 0.8) * min(cw, ch) / max(stamp.size)
            stamp = stamp.resize((max(1, int(stamp.width * scale)),
                                  max(1, int(stamp.height * scale))), Image.Resampling.BICUBIC)
            px = int(rng.integers(0, max(1, cw - stamp.width)))
            py = int(rng.integers(0, max(1, ch - stamp.height)))
            image.paste(stamp, (px, py), stamp)
        long_side = int(rng.integers(500, 1001))
        aspect = rng.choice([4 / 3, 3 / 2, 1.0, 3 / 4, 2 / 3])
        size = (long_side, int(long_side / aspect)) if aspect >= 1 else \
            (int(long_side * aspect), long_side)
        image = image.resize(size, Image.Resampling.BICUBIC)
        image.save(dest / f"photo_{i:04d}.jpg", quality=90)
    marker.touch()
    return sorted(dest.glob("*.jpg"))


# -- configurations ---------------------------------------------------------------------------
def baseline_model(backbone):
    """Plain timm model (no transferkit code in the loop) with the same ImageNet weights."""
    import timm

    model = timm.create_model(backbone.arch, pretrained=False, num_classes=0)
    state = {k: v for k, v in backbone.model.state_dict().items()
             if not k.startswith("classifier.")}
    model.load_state_dict(state)
    return model.eval()


def run_baseline(model, transform, paths: list[Path], batch_size: int) -> int:
    """The loop a user writes first: open, convert, transform, stack, forward."""
    from PIL import Image

    done = 0
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            images = [transform(Image.open(p).convert("RGB"))
                      for p in paths[start:start + batch_size]]
            feats = model(torch.stack(images))
            done += feats.shape[0]
    return done


def _cpu_seconds() -> float:
    t = os.times()  # this process (all threads) + finished worker processes
    return t.user + t.system + t.children_user + t.children_system


def timed(fn) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU-second spent by the job)."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    n = fn()
    return n / (time.perf_counter() - wall), n / max(1e-9, _cpu_seconds() - cpu)


def model_only(run, batch: torch.Tensor, n_images: int) -> int:
    done = 0
    while done < n_images:
        run(batch)
        done += batch.shape[0]
    return done


def flop_bound(backbone, size: int) -> tuple[float, float]:
    """(GFLOPs per image, measured float32 matmul GFLOP/s on all cores)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        backbone.embed(torch.zeros(1, 3, size, size))
    gflops = counter.get_total_flops() / 1e9
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9)
    return gflops, best


# -- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--data", type=Path, default=None, help="Folder of images to use.")
    parser.add_argument("--quick", action="store_true", help="96 images, 1 round.")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds = min(args.images, 96), 1
    os.environ.setdefault("TRANSFERKIT_QUIET", "1")

    import timm.data

    from transferkit.backbones import create
    from transferkit.features import embed_paths
    from transferkit.features.pipeline import iter_pixel_batches, normalize_pixels
    from transferkit.runtime import make_runner, onnx_backbone, run_in_order
    from transferkit.utils import available_cores, cache_dir, decode_threads, torch_threads

    if args.data is not None:
        from transferkit.data import list_images

        paths = list_images(args.data)[:args.images]
        data_desc = f"{len(paths)} files from {args.data}"
    else:
        folder = cache_dir("bench", f"photos-{DATA_VERSION}-{args.images}")
        paths = make_photo_folder(folder, args.images)
        data_desc = (f"{len(paths)} JPEGs, 500-1000 px long side, "
                     f"{sum(p.stat().st_size for p in paths) / len(paths) / 1024:.0f} KiB avg "
                     f"({folder})")
    backbone = create(args.backbone).eval()
    size = backbone.preprocessing.input_size
    bs = args.batch_size
    base = baseline_model(backbone)
    base_tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=base))
    start = time.perf_counter()
    onnx_backbone(backbone)  # export (or load the cached export) before timing
    export_s = time.perf_counter() - start

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(bs, size, size, 3), dtype=np.uint8)
    batch_cl = normalize_pixels(pixels, backbone.preprocessing, channels_last=True)
    batch_nchw = batch_cl.contiguous()
    backbone.to(memory_format=torch.channels_last)

    def torch_cl(x):
        with torch.inference_mode():
            backbone.embed(x)

    def eager_base(x):
        with torch.no_grad():
            base(x)

    n_model = max(bs * 2, min(len(paths), bs * 4))
    # our model-only runs the exact runner embed_paths uses on a job this long
    onnx_runner = make_runner("onnx", backbone, None, n_model // bs)

    def onnx_model_only() -> int:
        items = ((i, batch_nchw) for i in range(n_model // bs))
        return sum(len(v) for _, v in run_in_order(onnx_runner.embed, items,
                                                   onnx_runner.parallel))

    def decode_only() -> int:
        # What the engine's decoders do in a job, without the model: files -> uint8 batches.
        with torch_threads(1):
            return sum(len(b.indices) for b in iter_pixel_batches(
                paths, backbone.preprocessing, bs, decode_threads()))

    configs = {
        "e2e baseline": lambda: run_baseline(base, base_tf, paths, bs),
        "e2e ours torch": lambda: len(embed_paths(paths, backbone, batch_size=bs,
                                                  engine="torch", show_progress=False)),
        "e2e ours onnx": lambda: len(embed_paths(paths, backbone, batch_size=bs,
                                                 engine="onnx", show_progress=False)),
        "model baseline": lambda: model_only(eager_base, batch_nchw, n_model),
        "model ours torch": lambda: model_only(torch_cl, batch_cl, n_model),
        "model ours onnx": onnx_model_only,
        "decode ours": decode_only,
    }
    for fn in configs.values():  # warm-up: allocator, thread pools, page cache
        if fn is configs["e2e baseline"]:
            run_baseline(base, base_tf, paths[:bs], bs)
        else:
            fn()
    load_before = os.getloadavg()[0]
    wall: dict[str, list[float]] = {k: [] for k in configs}
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    # The two rows the 80% target compares run back to back in every round, so a slow drift
    # in machine speed (a shared VM) hits both alike; the other rows rotate around them.
    units = [[n] for n in configs if n not in ("e2e ours onnx", "model ours onnx")]
    units.append(["e2e ours onnx", "model ours onnx"])
    for r in range(args.rounds):
        order = units[r % len(units):] + units[:r % len(units)]  # rotate to spread noise
        for name in (n for unit in order for n in unit):
            w, c = timed(configs[name])
            wall[name].append(w)
            cpu[name].append(c)
        print(f"round {r + 1}/{args.rounds} images/s: " + ", ".join(
            f"{k} {v[-1]:.1f}" for k, v in wall.items()), file=sys.stderr)
    load_after = os.getloadavg()[0]
    gflops, peak = flop_bound(backbone, size)
    # Best round = least disturbed by other processes; CPU-seconds are far less sensitive to
    # them (median shown), so the ratios in that column hold on a busy machine too.
    best = {k: max(v) for k, v in wall.items()}
    per_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"\nEmbedding throughput, {backbone.name} at {size}px, batch {bs}, "
          f"{available_cores()} cores, torch {torch.__version__}")
    print(f"data: {data_desc}")
    print(f"rounds: {args.rounds}, interleaved (best round shown); 1-min load average "
          f"{load_before:.1f} before, {load_after:.1f} after; ONNX export/load {export_s:.1f} s")
    rows = [
        ("e2e  baseline: eager timm, PIL full decode", "e2e baseline", None),
        ("e2e  ours: torch engine (channels_last)", "e2e ours torch", "model ours torch"),
        ("e2e  ours: onnx engine", "e2e ours onnx", "model ours onnx"),
        ("model-only baseline: eager timm NCHW", "model baseline", None),
        ("model-only ours: torch channels_last", "model ours torch", None),
        ("model-only ours: onnx runtime", "model ours onnx", None),
        ("decode-only ours: files -> model-ready pixels", "decode ours", None),
    ]
    header = (f"{'configuration':<44} {'images/s':>9} {'vs base':>8} {'of model':>9} "
              f"{'img/CPU-s':>10} {'vs base':>8} {'of model':>9}")
    print(header)
    print("-" * len(header))
    for label, key, ref in rows:
        base_key = "e2e baseline" if key.startswith("e2e") else "model baseline"
        if key == "decode ours":
            print(f"{label:<44} {best[key]:>9.1f} {'':>8} {'':>9} {per_cpu[key]:>10.1f}")
            continue
        share = f"{best[key] / best[ref]:.0%}" if ref else ""
        cpu_share = f"{per_cpu[key] / per_cpu[ref]:.0%}" if ref else ""
        print(f"{label:<44} {best[key]:>9.1f} {best[key] / best[base_key]:>7.2f}x {share:>9} "
              f"{per_cpu[key]:>10.1f} {per_cpu[key] / per_cpu[base_key]:>7.2f}x {cpu_share:>9}")
    bound = peak / gflops
    print(f"{'FLOP bound: ' + f'{peak:.0f} GFLOP/s / {gflops:.2f} GFLOP per image':<44} "
          f"{bound:>9.0f}")
    speedup = best["e2e ours onnx"] / best["e2e baseline"]
    share = best["e2e ours onnx"] / best["model ours onnx"]
    cpu_share = per_cpu["e2e ours onnx"] / per_cpu["model ours onnx"]
    print(f"\ntarget e2e ours >= 4x baseline: {speedup:.2f}x {'PASS' if speedup >= 4 else 'MISS'}"
          f" (per CPU-second: {per_cpu['e2e ours onnx'] / per_cpu['e2e baseline']:.2f}x)")
    paired = statistics.median(e / m for e, m in zip(wall["e2e ours onnx"],
                                                      wall["model ours onnx"]))
    print(f"target e2e ours >= 80% of model-only: {share:.1%} "
          f"{'PASS' if share >= 0.8 else 'MISS'} (median of back-to-back pairs: {paired:.1%}; "
          f"per CPU-second: {cpu_share:.1%})")
    print(f"model-only onnx reaches {best['model ours onnx'] / bound:.0%} of the FLOP bound")
    model_ms, decode_ms = 1000 / per_cpu["model ours onnx"], 1000 / per_cpu["decode ours"]
    print(f"CPU per image: model {model_ms:.1f} ms, decode {decode_ms:.1f} ms. Decoding runs "
          f"{best['decode ours'] / best['model ours onnx']:.1f}x faster than the model, so the "
          f"model never waits for it; on cores the two share, e2e tops out near model / (model "
          f"+ decode) = {model_ms / (model_ms + decode_ms):.0%} of model-only.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
