"""The service's audio endpoints: search and predict with uploaded clips (real espeak speech)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from transferkit.audio import (
    build_audio_index,
    generate_espeak_digits,
    train_audio_classifier,
    tuxpaint_digits,
)
from transferkit.service import create_app


@pytest.fixture(scope="module")
def audio_service(tmp_path_factory, lite0):
    root = tmp_path_factory.mktemp("service-audio")
    digits = root / "digits"
    generate_espeak_digits(digits, voices=("en-us", "en-gb-x-rp"), variants=("", "+f2"))
    build_audio_index(digits, "mfcc", method="exact", output=root / "a.tkindex")
    train_audio_classifier(digits, "speech", "logreg", test_size=0.0, output=root / "model")
    app = create_app(backbone=lite0, audio_index_path=root / "a.tkindex",
                     audio_model_dir=root / "model")
    with TestClient(app) as client:
        yield client, digits


def upload(path: Path, name: str | None = None):
    return {"file": (name or path.name, path.read_bytes(), "application/octet-stream")}


def test_health_lists_the_audio_index_and_model(audio_service):
    client, _ = audio_service
    health = client.get("/api/health").json()
    assert health["audio_index"]["size"] == 40 and health["audio_index"]["backbone"] == "mfcc"
    assert health["audio_model"]["classes"] == [str(d) for d in range(10)]


def test_search_audio_finds_the_uploaded_clip(audio_service):
    client, digits = audio_service
    clip = sorted((digits / "3").iterdir())[0]
    response = client.post("/api/search-audio", files=upload(clip), params={"k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["encoder"] == "mfcc" and body["hits"][0]["path"] == str(clip)
    assert body["licence_note"] is None


def test_predict_audio_on_a_real_human_digit(audio_service):
    client, _ = audio_service
    real = tuxpaint_digits()
    seven = next(p for p, label in zip(real.paths, real.labels) if label == "7")
    response = client.post("/api/predict-audio", files=upload(seven))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["encoder"] == "speech" and "CC BY-NC-SA 4.0" in body["licence_note"]
    assert len(body["top_k"]) == 3


@pytest.mark.parametrize("content, message", [(b"", "empty file (0 bytes)"),
                                              (b"not audio at all", "not readable audio")])
def test_bad_clips_are_400_naming_the_upload(audio_service, tmp_path, content, message):
    client, _ = audio_service
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    for route in ("/api/search-audio", "/api/predict-audio"):
        response = client.post(route, files=upload(bad, "my clip.wav"))
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("my clip.wav: " + message)


def test_audio_routes_without_audio_artefacts_are_404(lite0, tmp_path):
    with TestClient(create_app(backbone=lite0)) as client:
        wav = tmp_path / "x.wav"
        wav.write_bytes(b"RIFF")
        response = client.post("/api/search-audio", files=upload(wav))
        assert response.status_code == 404 and "--audio-index" in response.json()["detail"]
        response = client.post("/api/predict-audio", files=upload(wav))
        assert response.status_code == 404 and "--audio-model" in response.json()["detail"]
