"""Speed/recall benchmark of the similar-image index: same code as ``transferkit bench-search``.

Raw Fashion-MNIST pixels (60k train x 784 as base, 10k test as queries, L2) and Lite0
embeddings of a subset (10k base / 1k queries at 64 px, cosine), recall@10 against exact
search and queries/s on one thread for a sweep of efSearch, with brute force and the raw
faiss index measured in the same run. Writes out/bench-search/{recall_qps.png,bench_search.json}.

Run: ``.venv/bin/python benchmarks/bench_search.py [--queries 10000] [--no-embeddings]``
(any ``transferkit bench-search`` option works).
"""

from __future__ import annotations

import sys

from transferkit.cli import app

if __name__ == "__main__":
    app(["bench-search", *sys.argv[1:]])
