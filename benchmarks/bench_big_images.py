"""Peak memory of ``transferkit embed`` on a folder of huge images, with and without the
decoded-pixel limit (the baseline is the same command with the limit raised above the
images' size, i.e. what embed did before the limit existed).

    .venv/bin/python benchmarks/bench_big_images.py                # 3 x 12000x12000 each
    .venv/bin/python benchmarks/bench_big_images.py --files 2 --side 10000 --quick

The images are written at run time into a temporary folder (greyscale, ~140 KB each as
PNG: tiny on disk, 144 MP once decoded), never committed. Each run is its own process; its
peak RSS comes from ``getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
# Runs one command and prints its peak RSS (kB on Linux) as the last line.
_MEASURE = ("import resource, subprocess, sys\n"
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
            "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_folder(folder: Path, files: int, side: int, fmt: str) -> None:
    """``files`` greyscale images of side x side, a few shapes on a flat background."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        image = Image.new("L", (side, side), 40 + 30 * n)
        ImageDraw.Draw(image).ellipse((side // 4, side // 4, 3 * side // 4, 3 * side // 4),
                                      fill=200)
        image.save(folder / f"big-{n}.{fmt}", quality=80)


def peak_rss(command: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """(exit code, peak RSS in MB, wall seconds) of ``command``."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True,
                         text=True, env=env, check=True).stdout.split()
    return int(out[-2]), int(out[-1]) / 1024, time.perf_counter() - start


def embed_run(folder: Path, output: Path, max_pixels: int | None, args, env) -> dict:
    command = [sys.executable, "-m", "transferkit", "embed", str(folder), "-o", str(output),
               "--workers", str(args.workers), "--engine", args.engine]
    if max_pixels is not None:
        command += ["--max-pixels", str(max_pixels)]
    code, rss, seconds = peak_rss(command, env)
    counts = {"embedded": 0, "skipped": 0}
    if code == 0:
        from transferkit.features import Embeddings

        table = Embeddings.load(output)
        counts = {"embedded": len(table), "skipped": len(table.failures)}
    return {"exit": code, "peak_rss_mb": round(rss), "seconds": round(seconds, 1), **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--side", type=int, default=12000)
    parser.add_argument("--workers", type=int, default=2, help="decode threads")
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--quick", action="store_true", help="2 files of 10000 x 10000")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.quick:
        args.files, args.side = 2, 10000
    env = {**os.environ, "TRANSFERKIT_QUIET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "src"),
                                                      env.get("PYTHONPATH")]))
    above = args.side * args.side + 1  # a limit the images fit under: the old behaviour
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        for fmt in ("png", "jpg"):
            folder = Path(tmp) / fmt
            write_folder(folder, args.files, args.side, fmt)
            for label, limit in (("no limit (before)", above), ("default limit", None)):
                row = embed_run(folder, Path(tmp) / f"{fmt}.parquet", limit, args, env)
                rows.append({"images": f"{args.files} x {fmt.upper()} {args.side}^2",
                             "max_pixels": label, **row})
    print(f"| images | max-pixels | embedded | skipped | peak RSS MB | s |\n|{'---|' * 6}")
    for r in rows:
        print(f"| {r['images']} | {r['max_pixels']} | {r['embedded']} | {r['skipped']} | "
              f"{r['peak_rss_mb']} | {r['seconds']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
