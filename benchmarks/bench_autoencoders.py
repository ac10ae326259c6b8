"""Autoencoder comparison on Fashion-MNIST: PCA vs conv AEs (three un-pooling kinds, plus
denoising) at the same bottleneck, with the baselines (mean image, kNN on raw pixels) measured
in the same run.

    .venv/bin/python benchmarks/bench_autoencoders.py --out out/ae-report
    .venv/bin/python benchmarks/bench_autoencoders.py --train-size 2000 --epochs 1  # quick

Writes summary.txt, report.json, reconstructions.png, interpolations.png, pca_curve.png and
the trained models under --out. Timings are CPU seconds of wall time; on a shared machine
they are noisy (set OMP_NUM_THREADS=1 when other jobs load the cores).
"""

from __future__ import annotations

import argparse
import time

from transferkit.autoencoders.report import compare_autoencoders, format_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/ae-report")
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--bottleneck", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--denoise-std", type=float, default=0.3)
    parser.add_argument("--quick", action="store_true", help="2000 train / 500 test, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.test_size, args.epochs = 2000, 500, 1
    start = time.perf_counter()
    report = compare_autoencoders(args.out, args.train_size, args.test_size, args.bottleneck,
                                  args.epochs, args.denoise_std)
    print(format_summary(report))
    print(f"total wall time {time.perf_counter() - start:.0f} s; pictures in {args.out}/")


if __name__ == "__main__":
    main()
