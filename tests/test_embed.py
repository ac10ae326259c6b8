"""Embedding folders: pooled penultimate features, parquet table, bad files skipped."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from transferkit.data import load_fashion_mnist, load_image
from transferkit.features import Embeddings, embed_arrays, embed_folder, preprocess_images


@pytest.fixture()
def mixed_folder(photos_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(photos_dir / name, folder / name)
    (folder / "broken.jpg").write_bytes((photos_dir / "coffee.jpg").read_bytes()[:2000])
    (folder / "empty.png").write_bytes(b"")
    return folder


def test_embed_folder_skips_and_reports_bad_files(lite0, mixed_folder):
    result = embed_folder(mixed_folder, lite0, batch_size=2, num_workers=0)
    assert [p.rsplit("/", 1)[-1] for p in result.paths] == ["chelsea.jpg", "coffee.jpg",
                                                            "rocket.jpg"]
    assert result.vectors.shape == (3, 1280)
    assert sorted((p.rsplit("/", 1)[-1], r) for p, r in result.failures) == [
        ("broken.jpg", "truncated or corrupt image data"), ("empty.png", "empty file (0 bytes)")]
    # each row is exactly the backbone's pooled feature of that file
    with torch.no_grad():
        direct = lite0.embed(preprocess_images([load_image(mixed_folder / "coffee.jpg")], lite0))
    np.testing.assert_allclose(result.vectors[1], direct[0].numpy(), rtol=1e-3, atol=1e-4)
    assert result.spec == lite0.spec()


def test_embeddings_parquet_round_trip(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    original = Embeddings([f"img_{i}.png" for i in range(5)], vectors,
                          {"name": "x", "preprocessing": {"input_size": 9}}, labels=list("aabbc"),
                          failures=[("bad.jpg", "empty file (0 bytes)")],
                          runtime={"engine": "openvino", "precision": "bf16"})
    path = original.save(tmp_path / "emb.parquet")
    loaded = Embeddings.load(path)
    np.testing.assert_array_equal(loaded.vectors, vectors)
    assert loaded.paths == original.paths and loaded.labels == list("aabbc")
    assert loaded.spec == original.spec and loaded.failures == original.failures
    assert loaded.runtime == {"engine": "openvino", "precision": "bf16"}
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind
    (tmp_path / "junk.parquet").write_text("nope")
    with pytest.raises(ValueError, match="junk.parquet"):
        Embeddings.load(tmp_path / "junk.parquet")


def test_embed_arrays_on_fashion_mnist(lite0):
    images, labels = load_fashion_mnist("test", limit=40)
    assert images.shape == (40, 28, 28) and images.dtype == np.uint8
    vectors = embed_arrays(images, lite0, image_size=64, batch_size=16)
    assert vectors.shape == (40, 1280)
    # same class -> closer on average than different class (the features carry meaning)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(40, dtype=bool)
    assert sims[same & off_diag].mean() > sims[~same].mean() + 0.05


def test_cli_embed_writes_parquet_and_lists_skipped(mixed_folder, tmp_path):
    out = tmp_path / "out" / "emb.parquet"
    result = subprocess.run(
        [sys.executable, "-m", "transferkit", "embed", str(mixed_folder), "-o", str(out),
         "--image-size", "96"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wrote 3 embeddings of dim 1280" in result.stdout
    assert "skipped 2 unreadable file(s)" in result.stderr
    assert "broken.jpg: truncated or corrupt image data" in result.stderr
    loaded = Embeddings.load(out)
    assert len(loaded) == 3 and loaded.spec["preprocessing"]["input_size"] == 96
