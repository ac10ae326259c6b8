"""An image index over tens of thousands of real files: build time, memory, recall, speed.

Run:  .venv/bin/python benchmarks/bench_index_files.py              (20,000 files, ~3 min)
      .venv/bin/python benchmarks/bench_index_files.py --files 60000
      .venv/bin/python benchmarks/bench_index_files.py --quick      (2,000 files)

Data: Fashion-MNIST training images written once as PNG files, one folder per class, under
``cache_dir("bench")``; 1,000 test images (also files) are the queries. The build is
``transferkit.search.build_index`` on the folder, exactly what ``transferkit index build``
runs: files decoded in chunks of 1,024, embedded by Lite0 at 64 px (ONNX engine), added to an
HNSW index, written atomically. Baseline, measured in the same run over the same vectors: an
exact (brute-force) index. Reported: build throughput, peak memory added by the build, file
size, recall@10 of HNSW against exact search, queries/s (one thread), query-by-file latency,
and how many of the 10 neighbours share the query's class.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

DATA_VERSION = "v1"


def write_png_folder(dest: Path, images: np.ndarray, labels: np.ndarray,
                     class_names: list[str]) -> list[Path]:
    """``images`` as PNG files in ``dest/<class>/``, written once (a marker says complete)."""
    from PIL import Image

    marker = dest / f".complete-{len(images)}"
    files = [dest / class_names[int(y)] / f"{i:06d}.png" for i, y in enumerate(labels)]
    if marker.exists():
        return files
    for name in class_names:
        (dest / name).mkdir(parents=True, exist_ok=True)
    for path, image in zip(files, images):
        Image.fromarray(image).save(path)
    marker.touch()
    return files


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000, help="Indexed files (<= 60,000).")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="2,000 files, 200 queries.")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.queries = min(args.files, 2000), min(args.queries, 200)
    os.environ.setdefault("TRANSFERKIT_QUIET", "1")

    from transferkit.data import FASHION_MNIST_CLASSES, load_fashion_mnist
    from transferkit.features import embed_paths, resolve_backbone
    from transferkit.search import VectorIndex, build_index
    from transferkit.utils import cache_dir

    root = cache_dir("bench", f"fashion-png-{DATA_VERSION}")
    train_x, train_y = load_fashion_mnist("train", limit=args.files)
    test_x, test_y = load_fashion_mnist("test", limit=args.queries)
    start = time.perf_counter()
    folders = [name.replace("/", "-") for name in FASHION_MNIST_CLASSES]  # "T-shirt/top"
    files = write_png_folder(root / f"train-{len(train_x)}", train_x, train_y, folders)
    queries = write_png_folder(root / f"test-{len(test_x)}", test_x, test_y, folders)
    write_s = time.perf_counter() - start

    backbone = resolve_backbone("efficientnet_lite0", args.image_size).eval()
    embed_paths(queries[:64], backbone, show_progress=False)  # export/load the ONNX model once
    out = cache_dir("bench") / "index-files.tkindex"
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    index = build_index(root / f"train-{len(train_x)}", backbone, output=out)
    build_s = time.perf_counter() - start
    rss_added = peak_rss_mb() - rss_before

    vectors = index.index.vectors()
    start = time.perf_counter()
    exact = VectorIndex(vectors.shape[1], metric="cosine", method="exact")
    exact.add(vectors, [str(i) for i in range(len(vectors))])
    exact_build_s = time.perf_counter() - start

    query_emb = embed_paths(queries, backbone, show_progress=False)
    qv = query_emb.vectors
    import faiss

    faiss.omp_set_num_threads(1)  # queries/s on one thread, as in bench_search.py

    def timed_search(idx, k=10):
        idx.search(qv[:32], k)  # warm-up
        start = time.perf_counter()
        _, ids = idx.search(qv, k)
        return ids, len(qv) / (time.perf_counter() - start)

    hnsw_ids, hnsw_qps = timed_search(index.index)
    exact_ids, exact_qps = timed_search(exact)
    # exact's ids are positions in `vectors`; map them to the HNSW index's ids
    live_ids = index.index.ids
    exact_ids = live_ids[exact_ids]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hnsw_ids, exact_ids)])
    labels_of = {int(i): Path(p).parent.name for i, p in zip(live_ids, index.index.items)}
    query_labels = [Path(p).parent.name for p in query_emb.paths]

    def same_class(ids) -> float:
        return float(np.mean([[labels_of[int(i)] == q for i in row]
                              for row, q in zip(ids, query_labels)]))

    latencies = []
    loaded = type(index).load(out, backbone=backbone)
    for path in queries[:50]:
        start = time.perf_counter()
        loaded.search_paths([path], k=10)
        latencies.append(time.perf_counter() - start)

    print(f"\nIndex over image files: Fashion-MNIST PNGs (28 px) in 10 class folders, "
          f"Lite0 at {args.image_size} px, {len(files)} files indexed, {len(qv)} query files")
    print(f"(PNG folder written/checked in {write_s:.1f} s: {root})")
    print(f"build (transferkit index build): {build_s:.1f} s = {len(index) / build_s:.0f} "
          f"files/s, peak memory +{rss_added:.0f} MB, file {out.stat().st_size / 2**20:.1f} MB, "
          f"{len(index.failures)} failures")
    print(f"exact baseline index over the same vectors: built in {exact_build_s:.2f} s")
    header = f"{'index':<34} {'recall@10':>10} {'queries/s':>10} {'same class@10':>14}"
    print(header)
    print("-" * len(header))
    print(f"{'HNSW (M=32, efSearch=64), ours':<34} {recall:>10.4f} {hnsw_qps:>10.0f} "
          f"{same_class(hnsw_ids):>14.3f}")
    print(f"{'exact (brute force), baseline':<34} {1.0:>10.4f} {exact_qps:>10.0f} "
          f"{same_class(exact_ids):>14.3f}")
    print(f"query by file (decode + embed + search, one at a time): p50 "
          f"{np.median(latencies) * 1000:.0f} ms, p95 {np.percentile(latencies, 95) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
