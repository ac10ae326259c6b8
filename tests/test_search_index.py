"""VectorIndex: recall vs exact, add/remove without rebuild, persistence, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from transferkit.search import IncompatibleModelError, VectorIndex
from transferkit.search.bench import recall_at_k


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Clusters on an 8-d subspace plus a little noise: like real embeddings, not iid noise."""
    rng = np.random.default_rng(seed)
    lift = np.random.default_rng(123).normal(size=(8, dim))
    centres = np.random.default_rng(7).normal(size=(20, 8))
    latent = centres[rng.integers(0, 20, n)] + 0.6 * rng.normal(size=(n, 8))
    return (latent @ lift + 0.05 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_hnsw_recall_matches_exact_on_random_vectors(metric):
    base, queries = _clustered(5000, 48), _clustered(200, 48, seed=1)
    exact = VectorIndex(48, metric=metric, method="exact")
    hnsw = VectorIndex(48, metric=metric, method="hnsw", M=16, ef_search=64)
    for index in (exact, hnsw):
        index.add(base, [f"v{i}" for i in range(len(base))])
    d_exact, truth = exact.search(queries, 10)
    d_hnsw, found = hnsw.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.95
    assert np.all(np.diff(d_hnsw, axis=1) >= -1e-6)  # nearest first
    # a tiny beam must do worse than a wide one: the parameter really reaches faiss
    _, rough = hnsw.search(queries, 10, ef_search=10)
    assert recall_at_k(rough, truth) <= recall_at_k(found, truth)
    # distances are real distances: l2 is Euclidean, cosine is 1 - cos
    q, b = queries[0], base[truth[0, 0]]
    want = np.linalg.norm(q - b) if metric == "l2" else \
        1 - q @ b / (np.linalg.norm(q) * np.linalg.norm(b))
    assert d_exact[0, 0] == pytest.approx(want, rel=1e-3, abs=1e-4)


def test_hnsw_recall_on_real_fashion_mnist_pixels():
    from transferkit.data import load_fashion_mnist

    base = load_fashion_mnist("train", limit=3000)[0].reshape(-1, 784).astype(np.float32)
    queries = load_fashion_mnist("test", limit=300)[0].reshape(-1, 784).astype(np.float32)
    exact = VectorIndex(784, metric="l2", method="exact")
    hnsw = VectorIndex(784, metric="l2", method="hnsw", M=16, ef_search=64)
    for index in (exact, hnsw):
        index.add(base, [str(i) for i in range(len(base))])
    d_truth, truth = exact.search(queries, 10)
    _, found = hnsw.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.95
    # 8-bit storage keeps raw pixels losslessly: same exact answer, same HNSW quality
    exact8 = VectorIndex(784, metric="l2", method="exact", storage="uint8")
    hnsw8 = VectorIndex(784, metric="l2", method="hnsw", M=16, ef_search=64, storage="uint8")
    for index in (exact8, hnsw8):
        index.add(base, [str(i) for i in range(len(base))])
    d8, ids8 = exact8.search(queries, 10)
    np.testing.assert_array_equal(ids8, truth)
    np.testing.assert_allclose(d8, d_truth, rtol=1e-5)
    assert recall_at_k(hnsw8.search(queries, 10)[1], truth) >= 0.95
    with pytest.raises(ValueError, match="whole numbers 0-255"):
        hnsw8.add(base[:1] / 3.0, ["scaled"])
    with pytest.raises(ValueError, match="metric='l2'"):
        VectorIndex(784, metric="cosine", storage="uint8")


def test_add_and_remove_without_rebuild_keep_ids_stable():
    x = _clustered(600, 16)
    index = VectorIndex(16, metric="l2", rebuild_threshold=0.5)
    first = index.add(x[:400], [f"a{i}" for i in range(400)])
    faiss_before = index.raw_index
    second = index.add(x[400:], [f"b{i}" for i in range(200)])
    assert first.tolist() == list(range(400)) and second.tolist() == list(range(400, 600))
    assert index.raw_index is faiss_before and index.raw_index.ntotal == 600  # appended
    index.remove([3, 401])
    assert index.raw_index is faiss_before and index.num_tombstones == 2  # no rebuild
    assert len(index) == 598 and 3 not in index and 402 in index
    _, ids = index.search(x[[3, 401, 7]], 5)
    assert 3 not in ids and 401 not in ids
    assert ids[2, 0] == 7 and index.item(7) == "a7" and index.item(405) == "b5"
    with pytest.raises(KeyError):
        index.item(3)
    with pytest.raises(KeyError):
        index.remove([3])  # already removed
    # past the threshold the structure is rebuilt from live rows; ids do not move
    index.remove(list(range(100, 400)))
    assert index.num_tombstones == 0 and index.raw_index is not faiss_before
    assert len(index) == 298 and index.raw_index.ntotal == 298
    _, ids = index.search(x[[450, 7]], 1)
    assert ids[:, 0].tolist() == [450, 7] and index.item(450) == "b50"
    new = index.add(x[:1], ["again"])
    assert new.tolist() == [600]  # ids are never reused


def test_fewer_items_than_k_gives_minus_one():
    index = VectorIndex(4, metric="cosine")
    index.add(np.eye(4, dtype=np.float32)[:3], ["x", "y", "z"])
    dist, ids = index.search(np.eye(4, dtype=np.float32)[:1], 5)
    assert ids[0, :3].tolist()[0] == 0 and (ids[0, 3:] == -1).all()
    assert np.isinf(dist[0, 3:]).all()
    empty = VectorIndex(4)
    assert (empty.search(np.ones((2, 4), np.float32), 3)[1] == -1).all()


def test_bad_inputs_raise_clear_errors():
    index = VectorIndex(8)
    with pytest.raises(ValueError, match="dim 8"):
        index.add(np.zeros((2, 5), np.float32), ["a", "b"])
    with pytest.raises(ValueError, match="2 vectors but 1 items"):
        index.add(np.zeros((2, 8), np.float32), ["a"])
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 8), np.nan, np.float32), 1)
    with pytest.raises(ValueError, match="metric"):
        VectorIndex(8, metric="manhattan")


@pytest.mark.parametrize("method", ["hnsw", "exact"])
def test_save_load_round_trip(tmp_path, method):
    x = _clustered(500, 32)
    spec = {"kind": "text", "name": "demo-encoder", "weights_id": "w1"}
    index = VectorIndex(32, metric="cosine", method=method, M=12, ef_search=40, spec=spec)
    index.add(x, [f"item {i}" for i in range(500)])
    index.remove([10, 11])
    path = index.save(tmp_path / "demo.tkindex")
    loaded = VectorIndex.load(path)
    assert loaded.params() == index.params() and loaded.spec == spec
    assert len(loaded) == 498 and loaded.num_tombstones == 2 and loaded.next_id_ == 500
    assert loaded.items == index.items and loaded.item(499) == "item 499"
    d1, i1 = index.search(x[:20], 5)
    d2, i2 = loaded.search(x[:20], 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, atol=1e-6)
    assert VectorIndex.read_header(path)["size"] == 498
    assert [p.name for p in tmp_path.iterdir()] == ["demo.tkindex"]  # no temp files left
    loaded.check_spec(spec)
    with pytest.raises(IncompatibleModelError, match="demo-encoder.*other-encoder"):
        loaded.check_spec({**spec, "name": "other-encoder"})


def test_load_rejects_files_that_are_not_indexes(tmp_path):
    bad = tmp_path / "bad.tkindex"
    bad.write_bytes(b"definitely not an index")
    with pytest.raises(ValueError, match="bad.tkindex"):
        VectorIndex.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.tkindex"):
        VectorIndex.load(tmp_path / "missing.tkindex")


_SAVE_LOOP = textwrap.dedent("""
    import sys
    import numpy as np
    from transferkit.search import VectorIndex
    path = sys.argv[1]
    x = np.random.default_rng(0).normal(size=(60_000, 128)).astype(np.float32)
    index = VectorIndex(128, metric="l2", method="exact")
    index.add(x, ["v"] * len(x))
    n = 0
    while True:
        index.add(x[:1], ["extra"])
        print("saving", len(index), flush=True)
        index.save(path)
        n += 1
""")


def _kill_during_a_save(path):
    """Run the save loop, SIGKILL it as soon as a temp file appears; -> (lines, leftovers)."""
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TRANSFERKIT_QUIET": "1"})
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # two saves have completed
        assert all(lines), "save loop died"
        deadline = time.monotonic() + 60
        caught = []
        while not caught and time.monotonic() < deadline:  # wait for a save mid-write
            caught = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert caught, "never saw a save in progress"
    return lines, [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]


def test_process_killed_while_writing_leaves_a_loadable_index(tmp_path):
    path = tmp_path / "live.tkindex"
    # The kill can land just after a save's rename; retry until it lands mid-write.
    for _ in range(5):
        lines, leftovers = _kill_during_a_save(path)
        if leftovers:
            break
    assert leftovers  # killed while the temp file was being written ...
    loaded = VectorIndex.load(path)  # ... yet the index is whole
    started = [int(s.split()[1]) for s in lines]
    assert len(loaded) >= started[1]  # at least the second save, which completed
    assert loaded.raw_index.ntotal == len(loaded) == len(loaded.items)
    _, ids = loaded.search(np.zeros((1, 128), np.float32), 3)
    assert (ids >= 0).all()
    loaded.save(path)  # a leftover temp file does not stop the next save
    assert len(VectorIndex.load(path)) == len(loaded)
