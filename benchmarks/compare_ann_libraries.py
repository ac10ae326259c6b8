"""faiss-cpu vs hnswlib on raw Fashion-MNIST (60k x 784 base, 10k queries, L2), one thread.

Why: the search index sits on one ANN library; this is the measurement behind the choice
written up in docs/readme-search.md. Same HNSW parameters for both libraries, recall@10
against exact search (cached ground truth shared with ``transferkit bench-search``).

Run: ``.venv/bin/python benchmarks/compare_ann_libraries.py [--queries 10000] [--ivf]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    import faiss
    import hnswlib

    from transferkit.data import load_fashion_mnist
    from transferkit.search.bench import ground_truth, recall_at_k

    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--M", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef", type=int, nargs="+", default=[16, 24, 32, 48, 64, 96])
    parser.add_argument("--ivf", action="store_true", help="also faiss IVF-Flat (256 lists)")
    args = parser.parse_args()
    k = 10
    base = load_fashion_mnist("train")[0].reshape(-1, 784).astype(np.float32)
    queries = load_fashion_mnist("test", limit=args.queries)[0].reshape(-1, 784)
    queries = queries.astype(np.float32)
    truth = ground_truth(base, queries, "l2", k,
                         cache_key=f"fmnist-784 raw (l2)_{len(base)}_{len(queries)}_l2_{k}")
    faiss.omp_set_num_threads(1)

    t0 = time.perf_counter()
    fh = faiss.IndexHNSWFlat(784, args.M)
    fh.hnsw.efConstruction = args.ef_construction
    fh.add(base)
    print(f"faiss HNSW build {time.perf_counter() - t0:.1f}s", flush=True)
    t0 = time.perf_counter()
    hl = hnswlib.Index(space="l2", dim=784)
    hl.init_index(max_elements=len(base), M=args.M, ef_construction=args.ef_construction)
    hl.set_num_threads(1)
    hl.add_items(base, np.arange(len(base)))
    print(f"hnswlib build {time.perf_counter() - t0:.1f}s", flush=True)

    # QPS per wall second and per CPU second of this one-thread process (the latter is what
    # an idle core gives; the machine is shared with other jobs).
    print(f"{'library':<14}{'param':>8}{'recall@10':>11}{'QPS':>10}{'QPS/cpu':>10}", flush=True)
    for ef in args.ef:
        for name in ("faiss-hnsw", "hnswlib"):
            t0, c0 = time.perf_counter(), time.process_time()
            if name == "faiss-hnsw":
                fh.hnsw.efSearch = ef
                _, found = fh.search(queries, k)
            else:
                hl.set_ef(max(ef, k))
                found, _ = hl.knn_query(queries, k)
            qps = len(queries) / (time.perf_counter() - t0)
            cpu_qps = len(queries) / (time.process_time() - c0)
            print(f"{name:<14}{ef:>8}{recall_at_k(found, truth):>11.4f}{qps:>10,.0f}"
                  f"{cpu_qps:>10,.0f}", flush=True)
    if args.ivf:
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(784), 784, 256)
        ivf.cp.niter = 10
        t0 = time.perf_counter()
        ivf.train(base[::3])
        ivf.add(base)
        print(f"faiss IVF256 build {time.perf_counter() - t0:.1f}s", flush=True)
        for nprobe in (2, 4, 8, 16):
            ivf.nprobe = nprobe
            t0 = time.perf_counter()
            _, found = ivf.search(queries, k)
            qps = len(queries) / (time.perf_counter() - t0)
            print(f"{'faiss-ivf256':<14}{nprobe:>8}{recall_at_k(found, truth):>11.4f}"
                  f"{qps:>10,.0f}", flush=True)


if __name__ == "__main__":
    main()
