"""Dense models and the lab gallery in the service: /api/segment, /api/localize, /api/lab,
with a segmentation model and a localiser trained briefly on the drawn fixture."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from _service_support import jpeg_bytes, trained_dense_models, write_gallery
from fastapi.testclient import TestClient
from PIL import Image

from transferkit.service import create_app


@pytest.fixture(scope="module")
def dense(tmp_path_factory, lite0) -> dict[str, str]:
    return trained_dense_models(tmp_path_factory, lite0)


@pytest.fixture(scope="module")
def client(dense, lite0):
    # the segmenter given as the model (kind read from its manifest), the localiser by name
    app = create_app(model_dir=dense["segmenter"], localizer_dir=dense["localizer"],
                     backbone=lite0)
    with TestClient(app) as c:
        yield c


def _image(dense, n: int = 0) -> tuple[str, bytes]:
    path = sorted(Path(dense["images"]).iterdir())[n]
    return path.name, path.read_bytes()


def _png(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def test_health_names_both_dense_models(client):
    health = client.get("/api/health").json()
    assert health["model"] is None  # the segmenter did not become the classifier
    assert health["segmenter"]["classes"] == ["background", "foreground"]
    assert health["localizer"]["backbone"] == "efficientnet_lite0"
    assert len(health["localizer"]["classes"]) >= 2


def test_segment_answers_fractions_mask_and_overlay(client, dense):
    name, data = _image(dense)
    body = client.post("/api/segment", files={"file": (name, data)}).json()
    assert body["image"]["filename"] == name
    width, height = body["image"]["width"], body["image"]["height"]
    fractions = {f["label"]: f["fraction"] for f in body["fractions"]}
    assert list(fractions) == ["background", "foreground"]
    assert sum(fractions.values()) == pytest.approx(1.0)
    mask = np.asarray(_png(body["mask_png"]))
    assert mask.shape == (height, width) and set(np.unique(mask)) <= {0, 1}
    assert (mask == 1).mean() == pytest.approx(fractions["foreground"])
    overlay = _png(body["overlay_png"])
    assert overlay.size == (width, height) and overlay.mode == "RGB"
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    changed = np.abs(np.asarray(overlay, dtype=np.int16) - original).sum(axis=2) > 0
    assert changed[mask == 1].all() and not changed[mask == 0].any()  # tint on the mask only
    assert 0 < body["threshold"] < 1


def test_localize_box_is_in_the_uploaded_pixels(client, dense):
    name, data = _image(dense, 1)
    small = client.post("/api/localize", files={"file": (name, data)}).json()
    assert small["label"] in small["classes"] and 0 < small["probability"] <= 1
    box = small["box"]
    assert box["x"] >= 0 and box["y"] >= 0 and box["w"] > 0 and box["h"] > 0
    assert box["x"] + box["w"] <= 64 + 1e-3 and box["y"] + box["h"] <= 64 + 1e-3
    assert min(_png(small["overlay_png"]).size) == 320  # enlarged so the label reads
    # the same picture three times larger (a JPEG): the box scales with it, the overlay is
    # capped at 1024 px
    big = Image.open(io.BytesIO(data)).convert("RGB").resize((192 * 6, 192 * 6))
    answer = client.post("/api/localize", files={"file": ("big.jpg", jpeg_bytes(big))}).json()
    assert answer["image"]["width"] == 1152  # decoded at full size, no JPEG draft
    assert answer["box"]["w"] == pytest.approx(18 * box["w"], rel=0.25)
    assert max(_png(answer["overlay_png"]).size) == 1024


def test_dense_uploads_follow_the_upload_rules(client):
    bad = client.post("/api/segment", files={"file": ("notes.txt", b"not an image at all")})
    assert bad.status_code == 415 and "notes.txt" in bad.json()["detail"]
    empty = client.post("/api/localize", files={"file": ("e.png", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    assert client.post("/api/segment").status_code == 422


def test_without_dense_models_the_routes_say_how_to_serve_one(lite0):
    with TestClient(create_app(backbone=lite0)) as c:
        files = {"file": ("x.png", b"x")}
        for route in ("/api/segment", "/api/localize"):
            answer = c.post(route, files=files)
            assert answer.status_code == 404 and "--model" in answer.json()["detail"]
        assert c.get("/api/lab").status_code == 404


def test_a_second_model_of_one_kind_or_a_non_model_is_refused(dense, lite0, tmp_path):
    with pytest.raises(ValueError, match="served as the segmenter already"):
        create_app(model_dir=dense["segmenter"], segmenter_dir=dense["segmenter"],
                   backbone=lite0)
    with pytest.raises(ValueError, match="not a localizer"):
        create_app(localizer_dir=dense["segmenter"], backbone=lite0)
    (tmp_path / "manifest.json").write_text('{"format": "transferkit-text-model/1"}')
    with pytest.raises(ValueError, match="not a model the service serves"):
        create_app(model_dir=tmp_path, backbone=lite0)


def test_lab_api_lists_the_gallery_pictures(lite0, tmp_path):
    write_gallery(tmp_path / "gallery")
    with TestClient(create_app(backbone=lite0, gallery_dir=tmp_path / "gallery",
                               token="a-token-of-16-chars")) as c:
        body = c.get("/api/lab").json()  # open, like /lab/ (an <img> sends no token)
        [picture] = body["pictures"]
        assert picture["title"] == "SVD compression of embeddings"
        assert picture["figures"] == [{"url": "/lab/svd.png",
                                       "caption": "precision@5 against kept dimensions"}]
        assert picture["numbers"]["precision_at_5"] == 0.91
        assert c.get(picture["figures"][0]["url"]).status_code == 200
    (tmp_path / "gallery" / "gallery.json").write_text("{not json")
    with TestClient(create_app(backbone=lite0, gallery_dir=tmp_path / "gallery")) as c:
        answer = c.get("/api/lab")
        assert answer.status_code == 404 and "gallery.json" in answer.json()["detail"]


def test_serve_sorts_models_by_kind_and_refuses_two_of_one(dense, tmp_path):
    from typer.testing import CliRunner

    from transferkit.cli import app
    from transferkit.cli.serve import models_by_kind

    found = models_by_kind([Path(dense["localizer"]), Path(dense["segmenter"])])
    assert found == {"localizer": Path(dense["localizer"]),
                     "segmenter": Path(dense["segmenter"])}
    twice = CliRunner().invoke(app, ["serve", "--model", dense["segmenter"],
                                     "--model", dense["segmenter"]])
    assert twice.exit_code == 2 and "a second segmenter" in twice.output
    (tmp_path / "manifest.json").write_text('{"format": "transferkit-index/1"}')
    other = CliRunner().invoke(app, ["serve", "--model", str(tmp_path)])
    assert other.exit_code == 2 and "not a model the service serves" in other.output
