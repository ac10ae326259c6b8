"""The lab: feature visualisation defaults that do not blow out, the layer atlas, the gallery
(resumable, offline index.html) and its web route, face search on real lfw_subset faces."""

from __future__ import annotations

import re

import numpy as np
import pytest
import skimage.data
from fastapi.testclient import TestClient
from PIL import Image

from transferkit.data import load_image, sample_photo
from transferkit.explain import (
    OLD_DEFAULTS,
    classify_image,
    layer_atlas,
    neighbour_difference,
    saturated_fraction,
    visualize,
)
from transferkit.lab import build_gallery, precision_at_k, svd_compress


def test_default_visualisation_stays_inside_the_pixel_range(lite0, tmp_path):
    """Regression guard on the defaults at reduced steps (not a timing test): the old lr 0.4
    saturates a third of the pixels within 32 steps; the defaults must not."""
    new = visualize(lite0, "class:tabby", steps=32, show_progress=False)
    old = visualize(lite0, "class:tabby", show_progress=False, **{**OLD_DEFAULTS, "steps": 32})
    path = tmp_path / "tabby.png"
    new.save(path)
    png = load_image(path)
    assert saturated_fraction(png) < 0.05 < saturated_fraction(old.image)
    assert neighbour_difference(png) < neighbour_difference(old.image)
    assert new.objective[-1] > new.objective[0]
    assert classify_image(lite0, png, 5)[0][0].startswith("tabby")


def test_layer_atlas_grid_has_a_row_per_layer_and_a_cell_per_channel(lite0):
    photos = [sample_photo(n) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    atlas = layer_atlas(lite0, photos, ["chelsea", "coffee", "astronaut", "rocket"],
                        layers=["blocks.1", "blocks.4"], channels_per_layer=3, steps=2,
                        input_size=64, top_k=2, show_progress=False)
    assert atlas.grid_shape == (2, 3)
    assert all(len(set(atlas.channels[layer])) == 3 for layer in atlas.layers)
    assert all(len(tops) == 2 for layer in atlas.layers for tops in atlas.top[layer])
    # the top images are ranked best first by the channel's score
    scores = [s for _, _, s in atlas.top["blocks.4"][0]]
    assert scores == sorted(scores, reverse=True)
    picture = atlas.render()
    assert picture.height > 2 * 96 and picture.width > 3 * 96


def test_quick_gallery_links_every_picture_and_resumes(lite0, tmp_path):
    only = ["svd", "attack", "ideal-tabby"]
    first = build_gallery(tmp_path, quick=True, only=only, show_progress=False)
    page = (tmp_path / "index.html").read_text()
    linked = set(re.findall(r'src="([^"]+)"', page))
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert linked == pngs and {"svd.png", "attack.png", "ideal-tabby.png"} <= pngs
    assert "http" not in page.replace("transferkit", "")  # nothing fetched from a network
    assert "transferkit attack coffee --target tabby" in page and "compression" in page
    before = (tmp_path / "svd.png").stat().st_mtime_ns
    second = build_gallery(tmp_path, quick=True, only=only, show_progress=False)
    assert (tmp_path / "svd.png").stat().st_mtime_ns == before  # unchanged params: skipped
    assert second["pictures"]["svd"] == first["pictures"]["svd"]


def test_svd_error_falls_as_k_grows_and_ratio_counts_numbers():
    photo = sample_photo("astronaut").resize((64, 64))
    results = [svd_compress(photo, k) for k in (1, 2, 10, 50)]
    mses = [mse for _, _, mse in results]
    assert mses == sorted(mses, reverse=True) and mses[-1] < 0.01 * mses[0] + 1e-3
    assert results[0][1] == pytest.approx(64 * 64 / (64 + 64 + 1))


def test_face_search_precision_on_real_lfw_subset():
    """lfw_subset: 100 faces then 100 non-faces; eigenface codes find faces near faces."""
    from transferkit.autoencoders import PCAAutoencoder

    faces = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)
    labels = np.r_[np.ones(100, int), np.zeros(100, int)]
    codes = PCAAutoencoder(16).fit(faces).transform(faces)
    precision, hits = precision_at_k(codes, labels, k=5, metric="l2")
    assert hits.shape == (200, 5) and not (hits == np.arange(200)[:, None]).any()
    assert precision > 0.8
    shuffled, _ = precision_at_k(codes, np.random.default_rng(0).permutation(labels), 5, "l2")
    assert shuffled < 0.65  # a label-blind search scores near chance


def test_lab_route_serves_the_gallery_folder_only(lite0, tmp_path):
    from transferkit.service import create_app

    (tmp_path / "index.html").write_text('<img src="a.png">')
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path.parent / "secret.png").write_bytes(b"x")
    with TestClient(create_app(backbone=lite0, gallery_dir=tmp_path)) as client:
        assert client.get("/lab/").text == '<img src="a.png">'
        answer = client.get("/lab/a.png")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert client.get("/lab/b.png").status_code == 404
        assert client.get("/lab/..%2Fsecret.png").status_code in (404, 422)
        assert client.get("/lab/index.html").status_code == 422
    with TestClient(create_app(backbone=lite0)) as client:
        assert client.get("/lab/").status_code == 404
    with pytest.raises(FileNotFoundError, match="gallery"):
        create_app(backbone=lite0, gallery_dir=tmp_path / "missing")


def test_gallery_cli_makes_one_picture_and_refuses_unknown_keys(tmp_path):
    from typer.testing import CliRunner

    from transferkit.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["gallery", "-o", str(tmp_path), "--quick", "--only", "svd"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "svd.png").exists() and 'src="svd.png"' in (
        tmp_path / "index.html").read_text()
    bad = runner.invoke(app, ["gallery", "-o", str(tmp_path), "--only", "cats"])
    assert bad.exit_code == 2 and "unknown" in bad.output


def test_ranking_first_then_visualising_works_on_a_fresh_backbone():
    """Ranking images converts a fresh backbone's weights (channels-last); done under
    inference_mode those weights could never be used in a backward pass again."""
    from transferkit.backbones import create
    from transferkit.explain import channel_scores, visualize_channels

    fresh = create("efficientnet_lite0")
    scores = channel_scores(fresh, [sample_photo("coffee")], ["blocks.2"])
    assert scores["blocks.2"].shape == (1, 40)
    images = visualize_channels(fresh, "blocks.2", [0, 1], steps=1, size=32, input_size=64,
                                show_progress=False)
    assert len(images) == 2
