"""Which 2-D projection the web app's embedding map should use: PCA vs UMAP, same vectors.

Why: the Map tab (``/api/map``) draws every indexed image as a point; a projection is worth
its cost when neighbours in the picture are neighbours in the embedding. Rows, one run, same
vectors (an image index: by default the 60,000-file Fashion-MNIST index that
``bench_webapp.py`` caches), each with its seconds and two numbers people can read:

* ``label 10-NN in 2-D``: accuracy of a 10-nearest-neighbour vote on the 2-D points (5-fold),
  i.e. how well colours cluster on the map; the ``original space`` row is the ceiling;
* ``kept neighbours``: of each sampled point's 10 nearest neighbours in the embedding, the
  share that are also among its 10 nearest on the map (trustworthiness of a lasso pick).

Run: ``.venv/bin/python benchmarks/bench_map.py [--index INDEX] [--sample 10000]``
(UMAP rows need ``pip install umap-learn``; they are skipped, and say so, without it).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

DEFAULT_INDEX = Path.home() / ".cache/transferkit/bench/webapp-60000-64px.tkindex"


def label_knn_accuracy(points: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(10), points, labels, cv=folds).mean())


def kept_neighbours(original: np.ndarray, points: np.ndarray, n_queries: int = 2000,
                    k: int = 10, seed: int = 0) -> float:
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    queries = rng.choice(len(points), size=min(n_queries, len(points)), replace=False)
    near_before = NearestNeighbors(n_neighbors=k + 1).fit(original).kneighbors(
        original[queries], return_distance=False)[:, 1:]
    near_after = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(
        points[queries], return_distance=False)[:, 1:]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(near_before, near_after)]))


def main() -> None:
    from transferkit.search import ImageIndex
    from transferkit.service.projection import project

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--sample", type=int, default=10_000,
                        help="points scored (the projection itself runs on all of them)")
    args = parser.parse_args()
    if not args.index.exists():
        raise SystemExit(f"{args.index}: no index; run benchmarks/bench_webapp.py --files 60000 "
                         f"first (it caches one there) or pass --index")
    index = ImageIndex.load(args.index)
    ids = np.asarray(index.ids, np.int64)
    vectors = index.index.vectors(ids).astype(np.float32)
    labels = np.array([os.path.basename(os.path.dirname(p)) for p in index.paths])
    rng = np.random.default_rng(0)
    scored = rng.choice(len(ids), size=min(args.sample, len(ids)), replace=False)
    print(f"{len(ids):,} vectors x {vectors.shape[1]} from {args.index.name}; "
          f"{len(set(labels))} labels; scored on {len(scored):,} points; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"\n{'projection':<22}{'seconds':>9}{'label 10-NN':>13}{'kept neighbours':>17}")
    print(f"{'original space':<22}{'-':>9}"
          f"{label_knn_accuracy(vectors[scored], labels[scored]):>13.3f}{1.0:>17.3f}")
    for method in ("pca", "umap"):
        try:
            start = time.perf_counter()
            xy = project(vectors, method)
            seconds = time.perf_counter() - start
        except ImportError:
            print(f"{method:<22}{'skipped: pip install umap-learn':>39}")
            continue
        print(f"{method:<22}{seconds:>9.1f}"
              f"{label_knn_accuracy(xy[scored], labels[scored]):>13.3f}"
              f"{kept_neighbours(vectors[scored], xy[scored]):>17.3f}")


if __name__ == "__main__":
    main()
