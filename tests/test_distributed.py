"""Ray engine: the same embedding job through Ray Data on a small local cluster gives the same
rows, vectors and skipped files as the single-process path; the CLI runs it and its parquet
builds a searchable index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from transferkit.features import Embeddings, embed_paths, resolve_backbone


@pytest.fixture(scope="module")
def ray_address():
    """A 2-CPU local Ray cluster for this module (no dashboard, small object store)."""
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 ** 2,
                       logging_level="warning",
                       runtime_env={"env_vars": {"TRANSFERKIT_QUIET": "1"}})
    yield context.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed_files(photos_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_mixed")
    for path in sorted(photos_dir.glob("*.jpg")):
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes((photos_dir / "coffee.jpg").read_bytes()[:2000])
    (folder / "empty.png").write_bytes(b"")
    return folder, sorted(folder.iterdir())


def _same(a: Embeddings, b: Embeddings) -> None:
    assert a.paths == b.paths and a.spec == b.spec and a.labels == b.labels
    assert sorted(a.failures) == sorted(b.failures)
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_ray_engine_matches_single_process(ray_address, lite0, mixed_files):
    from transferkit.distributed import embed_paths_ray

    folder, files = mixed_files
    labels = [p.stem for p in files]
    local = embed_paths(files, lite0, engine="onnx", labels=labels, batch_size=3)
    assert len(local) == 5 and len(local.failures) == 2
    through_ray = embed_paths(files, lite0, engine="ray", labels=labels, batch_size=3)
    _same(through_ray, local)
    assert sorted(os.path.basename(p) for p, _ in through_ray.failures) == ["broken.jpg",
                                                                            "empty.png"]
    # the torch model can run in the actors too (the Backbone travels to them)
    small = resolve_backbone(lite0, image_size=96)
    torch_local = embed_paths(files, small, engine="torch", batch_size=4)
    torch_ray = embed_paths_ray(files, small, engine="torch", batch_size=4, actors=1)
    _same(torch_ray, torch_local)
    assert torch_ray.spec["preprocessing"]["input_size"] == 96


@pytest.mark.slow
def test_cli_embed_with_ray_then_index_and_search(ray_address, lite0, mixed_files, tmp_path):
    folder, files = mixed_files
    out = tmp_path / "emb.parquet"
    env = {**os.environ, "RAY_ADDRESS": ray_address, "TRANSFERKIT_QUIET": "1"}
    result = subprocess.run([sys.executable, "-m", "transferkit", "embed", str(folder), "-o",
                             str(out), "--engine", "ray", "--batch-size", "4"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote 5 embeddings of dim 1280" in result.stdout
    assert "skipped 2 unreadable file(s)" in result.stderr
    assert "broken.jpg: truncated or corrupt image data" in result.stderr
    _same(Embeddings.load(out), embed_paths(files, lite0, engine="onnx"))

    index = tmp_path / "photos.tkindex"
    built = subprocess.run([sys.executable, "-m", "transferkit", "index", "build", str(out),
                            "-o", str(index)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "indexed 5 images" in built.stdout
    found = subprocess.run([sys.executable, "-m", "transferkit", "search", str(index),
                            str(folder / "chelsea.jpg"), "-k", "2", "--json"],
                           capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, found.stderr[-3000:]
    hits = json.loads(found.stdout)["hits"]
    # the query, embedded by the single-process engine, finds its own Ray-made row at ~0
    assert hits[0]["path"].endswith("chelsea.jpg") and hits[0]["distance"] < 1e-4
