"""Autoencoders on real Fashion-MNIST (small slices, 1-2 epochs): each test asserts something
a broken model would fail (beats the mean image, uses the switches, removes noise...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from transferkit.autoencoders import (
    ConvAutoencoder,
    PCAAutoencoder,
    as_unit_images,
    load_autoencoder,
    save_strip,
)
from transferkit.data import load_fashion_mnist

BOTTLENECK = 32


@pytest.fixture(scope="module")
def data():
    X, y = load_fashion_mnist("train", 2000)
    Xt, yt = load_fashion_mnist("test", 300)
    return X, y, Xt, yt


@pytest.fixture(scope="module")
def mean_mse(data):
    X, _, Xt, _ = data
    return float(np.mean((as_unit_images(Xt) - as_unit_images(X).mean(0)) ** 2))


_TRAINED: dict[tuple, ConvAutoencoder] = {}


def trained(data, unpool: str, denoise_std: float = 0.0) -> ConvAutoencoder:
    """One model per configuration per session (training is the slow part)."""
    key = (unpool, denoise_std)
    if key not in _TRAINED:
        _TRAINED[key] = ConvAutoencoder(BOTTLENECK, unpool, denoise_std, epochs=1,
                                        batch_size=32, lr=5e-3, verbose=False).fit(data[0])
    return _TRAINED[key]


def test_pca_mse_falls_with_components_and_round_trips(data, mean_mse, tmp_path):
    X, _, Xt, _ = data
    pca = PCAAutoencoder(BOTTLENECK).fit(X)
    curve = pca.mse_curve(Xt, [2, 8, 32, 128])
    mses = [row["mse"] for row in curve]
    assert mses == sorted(mses, reverse=True) and mses[-1] < 0.3 * mses[0]
    assert curve[2]["compression_ratio"] == pytest.approx(784 / 32)
    assert pca.mse(Xt) == pytest.approx(curve[2]["mse"], rel=1e-4)
    assert pca.mse(Xt) < 0.3 * mean_mse
    assert pca.transform(Xt).shape == (len(Xt), BOTTLENECK)
    full = PCAAutoencoder(784).fit(X)
    assert full.mse(X) < 1e-6  # all components: lossless up to float error
    pca.save(tmp_path / "pca")
    back = load_autoencoder(tmp_path / "pca")
    np.testing.assert_allclose(back.transform(Xt[:20]), pca.transform(Xt[:20]), atol=1e-5)


@pytest.mark.parametrize("unpool", ["nearest", "maxunpool", "transposed"])
def test_conv_autoencoder_beats_mean_image(data, mean_mse, unpool):
    _, _, Xt, _ = data
    model = trained(data, unpool)
    assert model.transform(Xt).shape == (len(Xt), BOTTLENECK)
    assert model.reconstruct(Xt).shape == (len(Xt), 28, 28)
    assert model.mse(Xt) < 0.7 * mean_mse, (unpool, model.mse(Xt), mean_mse)
    assert model.history_[-1]["train_mse"] < mean_mse


def test_maxunpool_decoder_uses_the_encoder_switches(data):
    _, _, Xt, _ = data
    model = trained(data, "maxunpool")
    codes, switches = model.encode(Xt)
    clean = as_unit_images(Xt)
    own = np.mean((model.inverse_transform(codes, switches) - clean) ** 2)
    other = tuple(s.roll(1, dims=0) for s in switches)  # each image gets its neighbour's
    swapped = np.mean((model.inverse_transform(codes, other) - clean) ** 2)
    assert own < 0.75 * swapped, (own, swapped)
    assert model.side_information_bits() > 0 and trained(data, "nearest") \
        .side_information_bits() == 0
    # the un-pooled map is zero everywhere except at the recorded max positions
    with torch.inference_mode():
        h = model.net_.act(model.net_.dec_fc(torch.from_numpy(codes[:4])))
        up = model.net_.unpool2(h.view(4, model.net_.c2, 7, 7), switches[1][:4]).flatten(2)
    mask = up.new_zeros(up.shape, dtype=bool).scatter_(2, switches[1][:4].flatten(2), True)
    assert (up[~mask] == 0).all() and up[mask].abs().sum() > 0


def test_denoising_autoencoder_removes_noise(data):
    _, _, Xt, _ = data
    model = trained(data, "nearest", denoise_std=0.3)
    clean = as_unit_images(Xt)
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 0.3, clean.shape), 0, 1).astype(np.float32)
    noisy_mse = float(np.mean((noisy - clean) ** 2))
    assert model.mse(noisy, target=Xt) < 0.6 * noisy_mse


def test_save_load_and_interpolation_strip(data, tmp_path):
    _, _, Xt, _ = data
    model = trained(data, "maxunpool")
    model.save(tmp_path / "ae")
    back = ConvAutoencoder.load(tmp_path / "ae")
    np.testing.assert_allclose(back.reconstruct(Xt[:16]), model.reconstruct(Xt[:16]), atol=1e-5)
    assert back.spec()["weights_id"] == model.spec()["weights_id"]
    with pytest.raises(ValueError, match="not PCAAutoencoder"):
        PCAAutoencoder.load(tmp_path / "ae")
    strip = back.interpolate(Xt[0], Xt[1], steps=7)
    assert strip.shape == (7, 28, 28) and strip.dtype == np.uint8
    ends = (back.reconstruct(Xt[:1])[0] * 255).round()
    assert np.abs(strip[0].astype(float) - ends).max() <= 1
    assert np.abs(strip[3].astype(float) - strip[0]).mean() > 1  # the path really moves
    path = save_strip(strip, tmp_path / "strip.png", scale=2)
    from PIL import Image

    assert Image.open(path).size == (7 * (56 + 2), 56 + 2)  # 2-px gaps


def test_codes_feed_search_index_and_heads(data):
    from transferkit.heads import make_head
    from transferkit.search import VectorIndex

    X, y, Xt, yt = data
    model = trained(data, "nearest")
    emb = model.to_embeddings(X, labels=y)
    assert emb.dim == BOTTLENECK and emb.spec["name"] == "autoencoder:conv"
    index = VectorIndex(emb.dim, metric="l2", method="exact", spec=emb.spec)
    ids = index.add(emb.vectors, emb.paths)
    _, hits = index.search(model.transform(Xt), k=5)
    lookup = dict(zip(ids.tolist(), y.tolist()))
    votes = np.array([np.bincount([lookup[i] for i in row], minlength=10).argmax()
                      for row in hits])
    assert (votes == yt).mean() > 0.5  # 10 classes: chance is 0.1
    head = make_head("logreg").fit(model.transform(X), y)
    assert head.score(model.transform(Xt), yt) > 0.6


def test_embed_paths_skips_bad_files(data, fashion_mini, tmp_path):
    model = trained(data, "nearest")
    files = sorted(fashion_mini.rglob("*.png"))[:12]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    emb = model.embed_paths([*files, bad], labels=["x"] * 13)
    assert len(emb) == 12 and emb.failures and emb.failures[0][0] == str(bad)
    assert emb.labels == ["x"] * 12


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PCAAutoencoder(2).fit(np.full((4, 28, 28), 3.0))
    with pytest.raises(ValueError, match="unpool"):
        ConvAutoencoder(unpool="bilinear", verbose=False).fit(np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_autoencoder("nowhere")


def test_cli_train_interpolate_embed(tmp_path, fashion_mini):
    from transferkit.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["autoencoder", "train", "--unpool", "pca", "--bottleneck", "16",
                              "--limit", "500", "-o", str(tmp_path / "pca")])
    assert out.exit_code == 0, out.output
    assert "test MSE" in out.output
    out = runner.invoke(app, ["autoencoder", "interpolate", str(tmp_path / "pca"), "-o",
                              str(tmp_path / "s.png"), "--steps", "5"])
    assert out.exit_code == 0 and (tmp_path / "s.png").exists(), out.output
    out = runner.invoke(app, ["autoencoder", "embed", str(tmp_path / "pca"), str(fashion_mini),
                              "-o", str(tmp_path / "codes.parquet")])
    assert out.exit_code == 0, out.output
    from transferkit.features import Embeddings

    emb = Embeddings.load(tmp_path / "codes.parquet")
    assert emb.dim == 16 and len(emb) == 120 and "Bag" in emb.labels
    out = runner.invoke(app, ["autoencoder", "interpolate", str(tmp_path / "missing")])
    assert out.exit_code == 2 and "missing" in out.output


def test_comparison_report_writes_pictures_and_numbers(data, tmp_path):
    from transferkit.autoencoders.report import compare_autoencoders

    X, y, Xt, yt = data
    report = compare_autoencoders(tmp_path, bottleneck=16, epochs=1, batch_size=16,
                                  save_models=False,
                                  data=(X[:1000], y[:1000], Xt[:100], yt[:100]))
    names = [r["model"] for r in report["models"]]
    assert names == ["pca", "conv-nearest", "conv-maxunpool", "conv-transposed",
                     "conv-nearest-denoise"]
    assert all(0 < r["test_mse"] < report["mean_image_mse"] for r in report["models"])
    assert all(r["knn_accuracy"] > 0.3 for r in report["models"])
    for name in ("reconstructions.png", "interpolations.png", "pca_curve.png", "summary.txt"):
        assert (tmp_path / name).stat().st_size > 0
    assert "conv-maxunpool" in (tmp_path / "summary.txt").read_text()
