"""``bench-search``: recall@k and queries/s of the index on Fashion-MNIST, one thread.

Every row is measured in the same run: brute force (exact ground truth), the raw faiss
index, and :class:`VectorIndex` wrapping that very faiss index, so the wrapper's overhead
is the ratio of two timings taken back to back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transferkit.search.vector_index import VectorIndex
from transferkit.utils import cache_dir, progress


@dataclass
class BenchRow:
    dataset: str
    method: str
    param: str
    recall: float
    qps: float
    raw_qps: float | None = None
    queries: int = 0
    cpu_qps: float = 0.0
    raw_cpu_qps: float | None = None
    group: str = ""  # rows sharing a base set and queries (one plot panel)

    @property
    def overhead(self) -> float | None:
        """Wrapper CPU time / raw library CPU time - 1 (0.05 = 5% slower).

        CPU time of this (single-threaded) process, so other processes competing for the
        cores do not show up as overhead.
        """
        return None if not self.raw_cpu_qps else self.raw_cpu_qps / self.cpu_qps - 1.0


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true k nearest found among the returned k."""
    k = truth.shape[1]
    hits = sum(len(np.intersect1d(f[:k], t, assume_unique=False)) for f, t in zip(found, truth))
    return hits / (k * len(truth))


def _timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def ground_truth(base: np.ndarray, queries: np.ndarray, metric: str, k: int,
                 cache_key: str | None = None) -> np.ndarray:
    """Exact k-NN ids (the brute-force index), cached on disk under ``cache_key``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", cache_key or "")
    path = cache_dir("bench-search") / f"gt_{safe}.npy" if cache_key else None
    if path is not None and path.exists():
        cached = np.load(path, allow_pickle=False)
        if cached.shape == (len(queries), k):
            return cached
    exact = VectorIndex(base.shape[1], metric=metric, method="exact")
    exact.add(base, [""] * len(base))
    _, ids = exact.search(queries, k)
    if path is not None:
        from transferkit.utils import atomic_path

        with atomic_path(path, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, ids)
    return ids


def sweep(dataset: str, base: np.ndarray, queries: np.ndarray, metric: str,
          ef_values: Sequence[int], M: int = 32, ef_construction: int = 100, k: int = 10,
          exact_queries: int = 1000, repeats: int = 2, log=print, storage: str = "float32",
          gt_name: str | None = None) -> list[BenchRow]:
    """Brute-force row (unless ``exact_queries=0``), then one row per ``ef_search``
    (wrapper QPS and raw faiss QPS)."""
    import faiss

    all_threads = faiss.omp_get_max_threads()
    truth = ground_truth(base, queries, metric, k, cache_key=f"{gt_name or dataset}_{len(base)}"
                                                             f"_{len(queries)}_{metric}_{k}")
    faiss.omp_set_num_threads(1)  # every timed search runs on one thread
    rows: list[BenchRow] = []

    if exact_queries > 0:
        exact = VectorIndex(base.shape[1], metric=metric, method="exact")
        exact.add(base, [""] * len(base))
        sub = queries[:exact_queries]
        wall, cpu, (_, ids) = _timed(lambda: exact.search(sub, k))
        rows.append(BenchRow(gt_name or dataset, "exact (brute force)", "-",
                             recall_at_k(ids, truth[:len(sub)]), len(sub) / wall, None,
                             len(sub), len(sub) / cpu, group=gt_name or dataset))
        log(f"  exact: {rows[-1].qps:,.0f} QPS on {len(sub)} queries")

    faiss.omp_set_num_threads(all_threads)  # building is not what is measured
    t0 = time.perf_counter()
    index = VectorIndex(base.shape[1], metric=metric, method="hnsw", M=M,
                        ef_construction=ef_construction, storage=storage)
    index.add(base, [""] * len(base))
    log(f"  hnsw {storage} build (M={M}, efConstruction={ef_construction}, "
        f"{all_threads} threads): "
        f"{time.perf_counter() - t0:.1f}s")
    faiss.omp_set_num_threads(1)
    raw = index.raw_index
    raw_queries = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cosine":
        raw_queries = raw_queries.copy()
        faiss.normalize_L2(raw_queries)  # done once, outside the raw timer: strict baseline
    for ef in progress(ef_values, desc=f"sweep {dataset}"):
        index.ef_search = ef

        def run_raw(ef=ef):
            raw.hnsw.efSearch = ef
            return raw.search(raw_queries, k)

        best = {"wrap": [np.inf, np.inf], "raw": [np.inf, np.inf]}
        # interleaved, so load from other processes hits both alike; small query sets
        # finish in a blink, so they are repeated more for a meaningful minimum
        for _ in range(min(10, max(repeats, -(-5000 // len(queries))))):
            for name, fn in (("wrap", lambda: index.search(queries, k)), ("raw", run_raw)):
                wall, cpu, out = _timed(fn)
                best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
                if name == "wrap":
                    ids = out[1]
        n = len(queries)
        rows.append(BenchRow(dataset, f"hnsw {storage} (tk)", f"ef={ef}", recall_at_k(ids, truth),
                             n / best["wrap"][0], n / best["raw"][0], n, n / best["wrap"][1],
                             n / best["raw"][1], group=gt_name or dataset))
        r = rows[-1]
        log(f"  ef={ef}: recall@{k}={r.recall:.4f} QPS={r.qps:,.0f} raw={r.raw_qps:,.0f} "
            f"per-CPU-s={r.cpu_qps:,.0f} raw={r.raw_cpu_qps:,.0f}")
    faiss.omp_set_num_threads(all_threads)
    return rows


def format_table(rows: Sequence[BenchRow], k: int = 10) -> str:
    """QPS = queries per wall second; QPS/cpu = per CPU second of this one-thread process
    (what an idle core would give); raw = the same faiss index called directly."""
    w = max([len("dataset")] + [len(r.dataset) for r in rows]) + 2
    m = max([len("method")] + [len(r.method) for r in rows]) + 2
    head = (f"{'dataset':<{w}}{'method':<{m}}{'param':>7}{f'recall@{k}':>10}{'QPS':>9}"
            f"{'raw QPS':>9}{'QPS/cpu':>9}{'raw/cpu':>9}{'overhead':>9}{'queries':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        raw = f"{r.raw_qps:,.0f}" if r.raw_qps else "-"
        raw_cpu = f"{r.raw_cpu_qps:,.0f}" if r.raw_cpu_qps else "-"
        over = f"{r.overhead:+.1%}" if r.overhead is not None else "-"
        lines.append(f"{r.dataset:<{w}}{r.method:<{m}}{r.param:>7}{r.recall:>10.4f}"
                     f"{r.qps:>9,.0f}{raw:>9}{r.cpu_qps:>9,.0f}{raw_cpu:>9}{over:>9}"
                     f"{r.queries:>8}")
    return "\n".join(lines)


def overhead_summary(rows: Sequence[BenchRow]) -> str:
    """Wrapper overhead over a whole sweep (sum of CPU times): steadier than any one row."""
    lines = []
    for name in dict.fromkeys(r.dataset for r in rows):
        mine = [r for r in rows if r.dataset == name and r.raw_cpu_qps]
        if mine:
            wrap = sum(r.queries / r.cpu_qps for r in mine)
            raw = sum(r.queries / r.raw_cpu_qps for r in mine)
            lines.append(f"{name}: wrapper overhead over the sweep {wrap / raw - 1:+.1%} "
                         f"(CPU time, {len(mine)} settings)")
    return "\n".join(lines)


def target_summary(rows: Sequence[BenchRow], dataset: str, min_recall: float = 0.95,
                   min_qps: float = 10_000) -> str:
    """Fastest setting reaching ``min_recall`` among datasets starting with ``dataset``."""
    ok = [r for r in rows if r.dataset.startswith(dataset) and r.raw_qps
          and r.recall >= min_recall]
    best = max(ok, key=lambda r: r.cpu_qps, default=None)  # CPU time: robust to other load
    if best is None:
        return f"{dataset}: no setting reached recall >= {min_recall}"
    wall = "met" if best.qps >= min_qps else "NOT met"
    cpu = "met" if best.cpu_qps >= min_qps else "NOT met"
    return (f"{dataset}: target recall>={min_recall} at >={min_qps:,.0f} QPS: {wall} in wall "
            f"time, {cpu} per CPU second: best {best.method} {best.param} "
            f"recall={best.recall:.4f} "
            f"QPS={best.qps:,.0f} (per CPU s {best.cpu_qps:,.0f}; raw faiss {best.raw_qps:,.0f}"
            f" / {best.raw_cpu_qps:,.0f}), wrapper overhead {best.overhead:+.1%}")


def plot(rows: Sequence[BenchRow], out_png: str | Path, k: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transferkit.utils import atomic_path

    groups = list(dict.fromkeys(r.group or r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.8), squeeze=False)
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    for ax, name in zip(axes[0], groups):
        mine = [r for r in rows if (r.group or r.dataset) == name]
        for method in dict.fromkeys(r.method for r in mine if r.raw_qps):
            line = [r for r in mine if r.method == method]
            colour = next(colours)
            label = method.replace(" (tk)", "")
            ax.plot([r.recall for r in line], [r.qps for r in line], "o-", color=colour,
                    label=f"transferkit {label}")
            ax.plot([r.recall for r in line], [r.raw_qps for r in line], "s--", alpha=0.6,
                    color=colour, label=f"raw faiss {label}")
            ax.plot([r.recall for r in line], [r.cpu_qps for r in line], "^:", alpha=0.8,
                    color=colour, label=f"transferkit {label}, per CPU second")
            for r in line:
                ax.annotate(r.param, (r.recall, r.cpu_qps), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        for r in mine:
            if not r.raw_qps:
                ax.plot([r.recall], [r.qps], "k*", markersize=12, label="brute force")
                ax.plot([r.recall], [r.cpu_qps], "*", color="grey", markersize=10,
                        label="brute force, per CPU second")
        ax.axvline(0.95, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{k}")
        ax.axhline(10_000, color="tab:red", lw=0.8, ls=":")
        ax.set_ylabel("queries / second (1 thread)")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


def fashion_embeddings(backbone: str = "efficientnet_lite0", image_size: int = 64,
                       n_base: int = 10_000, n_queries: int = 1_000
                       ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Backbone embeddings of a Fashion-MNIST subset, cached (npz, no pickle) for reruns."""
    from transferkit.backbones import create
    from transferkit.data import load_fashion_mnist
    from transferkit.features import embed_arrays
    from transferkit.utils import atomic_path

    path = cache_dir("bench-search") / f"fmnist_{backbone}_{image_size}px_{n_base}_{n_queries}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return data["base"], data["queries"], json.loads(str(data["spec"]))
    model = create(backbone, image_size=image_size)
    base = embed_arrays(load_fashion_mnist("train", limit=n_base)[0], model)
    queries = embed_arrays(load_fashion_mnist("test", limit=n_queries)[0], model)
    spec = model.spec()
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, base=base, queries=queries, spec=np.array(json.dumps(spec)))
    return base, queries, spec


def run_bench(out_dir: str | Path = "out/bench-search", n_base: int = 60_000,
              n_queries: int = 10_000,
              ef_values: Sequence[int] = (16, 24, 32, 48, 64, 96, 128), M: int = 32,
              ef_construction: int = 100, embeddings: bool = True, emb_base: int = 10_000,
              emb_queries: int = 1_000, image_size: int = 64, exact_queries: int = 1_000,
              backbone: str = "efficientnet_lite0", raw_storages: Sequence[str] = ("uint8",
                                                                                   "float32"),
              log=print) -> list[BenchRow]:
    """The whole benchmark: raw pixels (L2; 8-bit and float32 storage), then backbone
    embeddings (cosine)."""
    from transferkit.data import load_fashion_mnist

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = load_fashion_mnist("train", limit=n_base)[0].reshape(-1, 784).astype(np.float32)
    queries = load_fashion_mnist("test", limit=n_queries)[0].reshape(-1, 784).astype(np.float32)
    log(f"raw pixels: {len(base)} base x {len(queries)} queries, 784-d, L2")
    rows: list[BenchRow] = []
    for n, storage in enumerate(raw_storages):
        # one brute-force row suffices (float32 BLAS, the fastest exact search)
        rows += sweep(f"fmnist-784 raw {storage} (l2)", base, queries, "l2", ef_values, M,
                      ef_construction, exact_queries=exact_queries if n == 0 else 0, log=log,
                      storage=storage, gt_name="fmnist-784 raw (l2)")
    if embeddings:
        ebase, equeries, spec = fashion_embeddings(backbone, image_size, emb_base, emb_queries)
        log(f"embeddings: {spec['name']} at {image_size}px, {len(ebase)} base x "
            f"{len(equeries)} queries, {ebase.shape[1]}-d, cosine")
        rows += sweep(f"fmnist {spec['name'][-5:]} {image_size}px emb (cos)", ebase, equeries,
                      "cosine",
                      ef_values, M, ef_construction, exact_queries=exact_queries, log=log)
    (out_dir / "bench_search.json").write_text(json.dumps(
        [{**asdict(r), "overhead": r.overhead} for r in rows], indent=2))
    plot(rows, out_dir / "recall_qps.png")
    return rows
