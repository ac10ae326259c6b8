"""`transferkit serve --model`: predictions from a real trained transfer model, and its report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from _service_support import trained_model
from fastapi.testclient import TestClient
from PIL import Image

from transferkit.service import create_app


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, fashion_mini) -> str:
    return trained_model(tmp_path_factory, fashion_mini)


@pytest.fixture(scope="module")
def client(model_dir, lite0):
    with TestClient(create_app(model_dir=model_dir, backbone=lite0)) as c:
        yield c


def test_health_lists_the_model_classes(client, fashion_mini):
    model = client.get("/api/health").json()["model"]
    assert sorted(model["classes"]) == sorted(p.name for p in fashion_mini.iterdir())
    assert model["backbone"] == "efficientnet_lite0"


def test_predict_uses_the_trained_model(client, model_dir, fashion_mini):
    from transferkit.data import load_image
    from transferkit.train import load_model

    path = sorted((fashion_mini / "Trouser").glob("*.png"))[0]
    response = client.post("/api/predict?k=3",
                           files={"file": (path.name, path.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "model"
    assert len(body["predictions"]) == 3
    # Same answer as the Python API on the same file.
    expected = load_model(model_dir).predict_images([load_image(path)], top_k=3)[0]
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in expected]
    for got, want in zip(body["predictions"], expected):
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-4)


def test_top_k_never_exceeds_the_number_of_classes(client, fashion_mini):
    path = sorted((fashion_mini / "Sneaker").glob("*.png"))[0]
    response = client.post("/api/predict?k=50",
                           files={"file": (path.name, path.read_bytes(), "image/png")})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 10
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-3)


def test_report_endpoint_returns_metrics_and_pictures(client, model_dir):
    response = client.get("/api/report")
    assert response.status_code == 200
    body = response.json()
    on_disk = json.loads((Path(model_dir) / "report" / "report.json").read_text())
    assert body["report"]["accuracy"] == on_disk["accuracy"]
    assert len(body["report"]["confusion_matrix"]) == 10
    assert body["images"]["confusion_matrix"] == "/api/report/confusion_matrix.png"
    picture = client.get(body["images"]["confusion_matrix"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size[0] > 200


@pytest.mark.parametrize("name", ["report.json", "../manifest.json", "..%2Fmanifest.json",
                                  "confusion_matrix.PNG", "x.png"])
def test_report_pictures_are_a_fixed_list(client, name):
    response = client.get(f"/api/report/{name}")
    assert response.status_code in (404, 422)
    assert b'"classes"' not in response.content


def test_report_without_learning_curve_is_404_not_500(client, model_dir):
    assert not (Path(model_dir) / "report" / "learning_curve.png").exists()
    response = client.get("/api/report/learning_curve.png")
    assert response.status_code == 404
    assert "learning_curve" in response.json()["detail"]


def test_missing_model_dir_fails_at_start(tmp_path, lite0):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        create_app(model_dir=tmp_path, backbone=lite0)
