"""Speed/recall benchmark of the similar-image index: same code as ``transferkit bench-search``.

Raw Fashion-MNIST pixels (60k train x 784 as base, 10k test as queries, L2; 8-bit and
float32 storage) and Lite0 embeddings of a subset (10k base / 1k queries at 64 px, cosine):
recall@10 against exact search and queries/s on one thread over a sweep of efSearch, with
brute force and the raw faiss index measured in the same run. Writes
out/bench-search/{recall_qps.png,bench_search.json}.

Run: ``.venv/bin/python benchmarks/bench_search.py`` (about 10 min on a loaded 2-core box)
     ``.venv/bin/python benchmarks/bench_search.py --quick`` (20k base, 2k queries, ~2 min)
Any ``transferkit bench-search`` option works too.
"""

from __future__ import annotations

import sys

from transferkit.cli import app

QUICK = ["--base", "20000", "--queries", "2000", "--raw-storage", "uint8", "--ef", "12",
         "--ef", "16", "--ef", "32", "--ef", "64", "--exact-queries", "200", "--emb-base",
         "2000", "--emb-queries", "200", "--out-dir", "out/bench-search-quick"]

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--quick" in args:
        args = QUICK + [a for a in args if a != "--quick"]
    app(["bench-search", *args])
