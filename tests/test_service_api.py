"""HTTP API of `transferkit serve`: real backbone and real index, through FastAPI's TestClient."""

from __future__ import annotations

import io

import numpy as np
import pytest
from _service_support import built_index, decompression_bomb_png, jpeg_bytes, png_bytes
from fastapi.testclient import TestClient
from PIL import Image

from transferkit.service import create_app

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def client(lite0):
    with TestClient(create_app(backbone=lite0, max_upload_bytes=LIMIT)) as c:
        yield c


@pytest.fixture(scope="module")
def index_path(tmp_path_factory, lite0, photos_dir, fashion_mini) -> str:
    return built_index(tmp_path_factory, lite0, photos_dir, fashion_mini)


@pytest.fixture(scope="module")
def index_client(lite0, index_path):
    with TestClient(create_app(index_path=index_path, backbone=lite0,
                               max_upload_bytes=LIMIT)) as c:
        yield c


@pytest.fixture(scope="module")
def cat_jpeg(photos_dir) -> bytes:
    return (photos_dir / "chelsea.jpg").read_bytes()


def upload(name: str, data: bytes, content_type: str = "image/jpeg") -> dict:
    return {"file": (name, data, content_type)}


# -- happy paths ---------------------------------------------------------------------------
def test_health_reports_what_is_loaded(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["backbone"] == "efficientnet_lite0"
    assert body["model"] is None and body["index"] is None
    assert body["max_upload_bytes"] == LIMIT


def test_predict_without_model_gives_imagenet_classes(client, cat_jpeg):
    response = client.post("/api/predict?k=3", files=upload("chelsea.jpg", cat_jpeg))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "imagenet"
    assert body["image"] == {"filename": "chelsea.jpg", "width": 451, "height": 300}
    preds = body["predictions"]
    assert len(preds) == 3
    assert "cat" in preds[0]["label"], preds
    assert preds[0]["probability"] >= preds[1]["probability"] >= preds[2]["probability"]
    assert 0.5 < sum(p["probability"] for p in preds) <= 1.0 + 1e-6


def test_embed_matches_the_python_api(client, lite0, photos_dir, cat_jpeg):
    import torch

    from transferkit.data import load_image
    from transferkit.features import preprocess_images

    response = client.post("/api/embed", files=upload("chelsea.jpg", cat_jpeg))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dim"] == lite0.num_features == len(body["embedding"])
    image = load_image(photos_dir / "chelsea.jpg", draft_size=lite0.preprocessing.resize_size)
    with torch.inference_mode():
        expected = lite0.embed(preprocess_images([image], lite0))[0].numpy()
    np.testing.assert_allclose(np.asarray(body["embedding"]), expected, rtol=1e-4, atol=1e-4)


def test_content_is_sniffed_not_the_file_name(client, photos_dir):
    # A PNG named .txt and sent as text/plain is still an image.
    data = png_bytes(Image.open(photos_dir / "coffee.jpg"))
    response = client.post("/api/predict", files=upload("notes.txt", data, "text/plain"))
    assert response.status_code == 200, response.text
    assert "espresso" in [p["label"] for p in response.json()["predictions"]][:3]


def test_odd_image_modes_are_accepted(client):
    for image in (Image.new("L", (40, 30), 128), Image.new("RGBA", (30, 40), (200, 0, 0, 90)),
                  Image.new("I;16", (32, 32), 3000), Image.new("P", (20, 20))):
        response = client.post("/api/predict", files=upload("odd.png", png_bytes(image)))
        assert response.status_code == 200, (image.mode, response.text)


# -- bad input: clear 4xx, never a 500 ------------------------------------------------------
@pytest.mark.parametrize("name,data,status,words", [
    ("notes.jpg", b"this is not an image at all\n" * 20, 415, "not an image"),
    ("script.png", b"<?php system($_GET['c']); ?>", 415, "not an image"),
    ("empty.jpg", b"", 400, "empty"),
    ("bomb.png", decompression_bomb_png(), 413, "too large"),
])
def test_bad_uploads_get_clear_4xx(client, name, data, status, words):
    response = client.post("/api/predict", files=upload(name, data))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert words in detail and name in detail


def test_truncated_jpeg_is_400(client, cat_jpeg):
    response = client.post("/api/embed", files=upload("half.jpg", cat_jpeg[: len(cat_jpeg) // 2]))
    assert response.status_code == 400
    assert "truncated" in response.json()["detail"]


def test_oversized_upload_is_413(client):
    big = jpeg_bytes(Image.effect_noise((900, 900), 80).convert("RGB"), quality=100)
    assert len(big) > LIMIT
    response = client.post("/api/predict", files=upload("big.jpg", big))
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_file_just_under_the_envelope_but_over_the_limit_is_413(client, cat_jpeg):
    # Whole body under limit + multipart allowance, file itself over the limit.
    data = cat_jpeg + b"\0" * (LIMIT + 10 - len(cat_jpeg))
    response = client.post("/api/predict", files=upload("padded.jpg", data))
    assert response.status_code == 413
    assert "padded.jpg" in response.json()["detail"]


@pytest.mark.parametrize("kwargs", [
    {},                                                           # no body at all
    {"data": {"file": "just a string"}},                          # a form field, not a file
    {"content": b"\xff\xd8\xff", "headers": {"content-type": "image/jpeg"}},  # raw body
    {"content": b"--x\r\ngarbage", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    {"json": {"file": "aGVsbG8="}},
])
def test_malformed_requests_are_4xx(client, kwargs):
    response = client.post("/api/predict", **kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize("query", ["k=0", "k=51", "k=abc", "k=-3"])
def test_bad_k_is_422(client, cat_jpeg, query):
    response = client.post(f"/api/predict?{query}", files=upload("c.jpg", cat_jpeg))
    assert response.status_code == 422


def test_features_that_need_artefacts_say_so(client, cat_jpeg):
    response = client.post("/api/search", files=upload("c.jpg", cat_jpeg))
    assert response.status_code == 404 and "--index" in response.json()["detail"]
    assert client.get("/thumbnails/0").status_code == 404
    response = client.get("/api/report")
    assert response.status_code == 404 and "--model" in response.json()["detail"]
    assert client.get("/api/report/confusion_matrix.png").status_code == 404


# -- page, static files, spec ----------------------------------------------------------------
def test_page_and_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="file-input"' in page.text and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/api/health").headers["x-content-type-options"] == "nosniff"
    assert "http://" not in page.text and "https://" not in page.text  # offline: no CDN
    for asset, kind in [("app.js", "javascript"), ("style.css", "css")]:
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "https://" not in response.text


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py",
                                  "/static/..%2fapp.py", "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
                                  "/static//etc/passwd"])
def test_static_files_do_not_escape_their_folder(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "import" not in response.text


def test_openapi_spec_lists_the_endpoints(client):
    spec = client.get("/openapi.json").json()
    for path in ["/api/health", "/api/predict", "/api/embed", "/api/search",
                 "/thumbnails/{item_id}", "/api/report"]:
        assert path in spec["paths"], path
    predict = spec["paths"]["/api/predict"]["post"]
    assert "multipart/form-data" in predict["requestBody"]["content"]
    assert {"413", "415"} <= set(predict["responses"])


# -- with an index: search and thumbnails ----------------------------------------------------
def test_search_finds_the_same_photo_first(index_client, photos_dir, fashion_mini):
    health = index_client.get("/api/health").json()
    assert health["index"]["size"] == 5 + 120
    data = (photos_dir / "coffee.jpg").read_bytes()
    response = index_client.post("/api/search?k=4", files=upload("query.jpg", data))
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert len(hits) == 4
    assert hits[0]["name"] == "coffee.jpg" and hits[0]["distance"] < 1e-3
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert all(h["thumbnail_url"] == f"/thumbnails/{h['id']}" for h in hits)


def test_search_for_a_garment_returns_garments(index_client, fashion_mini):
    query = sorted((fashion_mini / "Trouser").glob("*.png"))[0]
    response = index_client.post("/api/search?k=5", files=upload(query.name, query.read_bytes()))
    hits = response.json()["hits"]
    assert hits[0]["path"] == str(query.resolve())
    assert sum("/Trouser/" in h["path"] for h in hits) >= 3, hits


def test_thumbnails_are_small_jpegs_of_indexed_files(index_client, photos_dir):
    data = (photos_dir / "astronaut.jpg").read_bytes()
    hit = index_client.post("/api/search?k=1", files=upload("a.jpg", data)).json()["hits"][0]
    response = index_client.get(hit["thumbnail_url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(response.content))
    assert thumb.format == "JPEG" and max(thumb.size) == 128
    bigger = Image.open(io.BytesIO(index_client.get(hit["thumbnail_url"] + "?size=256").content))
    assert max(bigger.size) == 256


@pytest.mark.parametrize("path,status", [
    ("/thumbnails/999999", 404), ("/thumbnails/-1", 422), ("/thumbnails/abc", 422),
    ("/thumbnails/..%2F..%2Fetc%2Fpasswd", 404), ("/thumbnails/0?size=5000", 422),
    ("/thumbnails/%2Fetc%2Fpasswd", 404), ("/thumbnails/0/../../etc/passwd", 404),
])
def test_thumbnails_only_serve_index_ids(index_client, path, status):
    response = index_client.get(path)
    assert response.status_code == status, (path, response.text)
    assert b"root:" not in response.content


def test_search_k_is_bounded(index_client, cat_jpeg):
    response = index_client.post("/api/search?k=100", files=upload("c.jpg", cat_jpeg))
    assert response.status_code == 200
    assert len(response.json()["hits"]) == 100
    response = index_client.post("/api/search?k=101", files=upload("c.jpg", cat_jpeg))
    assert response.status_code == 422


def test_missing_index_file_fails_at_start(tmp_path, lite0):
    with pytest.raises(FileNotFoundError, match="nope.tkindex"):
        create_app(index_path=tmp_path / "nope.tkindex", backbone=lite0)


# -- text search -----------------------------------------------------------------------------
QUOTES = ["The starship Enterprise entered orbit around the planet.",
          "Fresh bread and butter make a perfect breakfast.",
          "The court dismissed the lawsuit against the company.",
          "My laptop crashed and I lost the whole report."]


@pytest.fixture(scope="module")
def text_index_path(tmp_path_factory) -> str:
    from transferkit.text import build_text_index

    path = tmp_path_factory.mktemp("service-text") / "quotes.tkindex"
    build_text_index(QUOTES, "minilm", method="exact", output=path)
    return str(path)


@pytest.fixture(scope="module")
def text_client(lite0, text_index_path):
    with TestClient(create_app(backbone=lite0, text_index_path=text_index_path)) as c:
        yield c


def test_text_search_finds_the_closest_sentence(text_client):
    health = text_client.get("/api/health").json()
    assert health["text_index"]["size"] == 4 and health["text_index"]["backbone"] == "minilm"
    response = text_client.get("/api/search-text", params={"q": "a judge threw out the case",
                                                           "k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["encoder"] == "minilm" and len(body["hits"]) == 2
    assert body["hits"][0]["text"] == QUOTES[2]
    assert body["hits"][0]["score"] > body["hits"][1]["score"]
    # the same vectors as the Python API
    from transferkit.text import TextIndex

    index = TextIndex.load(text_client.app.state.engine.text_index.path)
    expected = index.search_texts(["a judge threw out the case"], 2)[0]
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    assert body["hits"][0]["distance"] == pytest.approx(expected[0].distance, abs=1e-5)


@pytest.mark.parametrize("params, status", [({}, 422), ({"q": ""}, 422), ({"q": "   "}, 400),
                                            ({"q": "x" * 2001}, 422), ({"q": "x", "k": 0}, 422)])
def test_bad_text_queries_are_4xx(text_client, params, status):
    response = text_client.get("/api/search-text", params=params)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_text_search_needs_a_text_index(client, index_path, lite0):
    response = client.get("/api/search-text", params={"q": "hello"})
    assert response.status_code == 404 and "--text-index" in response.json()["detail"]
    with pytest.raises(ValueError, match="not a text index"):
        create_app(backbone=lite0, text_index_path=index_path)


def test_a_text_index_given_as_image_index_is_refused(lite0, text_index_path):
    with pytest.raises(ValueError, match="is a text index; serve it with --text-index"):
        create_app(backbone=lite0, index_path=text_index_path)


# -- bearer token ------------------------------------------------------------------------------
TOKEN = "a-long-enough-test-token"


@pytest.fixture(scope="module")
def token_client(lite0, index_path):
    with TestClient(create_app(index_path=index_path, backbone=lite0, token=TOKEN)) as c:
        yield c


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}])
def test_token_guards_every_api_route_but_health(token_client, cat_jpeg, headers):
    assert token_client.get("/api/health", headers=headers).status_code == 200
    assert token_client.get("/", headers=headers).status_code == 200  # the page asks for it
    for method, url, kwargs in [("post", "/api/predict", {"files": upload("c.jpg", cat_jpeg)}),
                                ("post", "/api/search", {"files": upload("c.jpg", cat_jpeg)}),
                                ("get", "/thumbnails/0", {}), ("get", "/api/report", {})]:
        response = token_client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == 401, (url, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in response.json()["detail"]


def test_right_token_is_let_through_and_documented(token_client, cat_jpeg):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = token_client.post("/api/predict?k=2", files=upload("c.jpg", cat_jpeg),
                                 headers=auth)
    assert response.status_code == 200, response.text
    assert token_client.get("/thumbnails/0", headers=auth).status_code == 200
    spec = token_client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    predict = spec["paths"]["/api/predict"]["post"]
    assert predict["security"] == [{"HTTPBearer": []}] and "401" in predict["responses"]
    assert "security" not in spec["paths"]["/api/health"]["get"]


def test_spec_states_the_limits(index_client):
    spec = index_client.get("/openapi.json").json()
    thumb = {p["name"]: p["schema"] for p in spec["paths"]["/thumbnails/{item_id}"]["get"][
        "parameters"]}
    assert thumb["size"]["enum"] == [64, 96, 128, 160, 256] and thumb["item_id"]["minimum"] == 0
    search = spec["paths"]["/api/search"]["post"]
    k = next(p["schema"] for p in search["parameters"] if p["name"] == "k")
    assert (k["minimum"], k["maximum"]) == (1, 100)
    body = search["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    field = spec["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]["file"]
    assert (field["minLength"], field["maxLength"]) == (1, LIMIT)
    assert "89,478,485 pixels" in field["description"]
    for status in ("400", "404", "413", "415", "422", "503"):
        schema = search["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, status


def test_validation_errors_are_one_line_strings(client, cat_jpeg):
    response = client.post("/api/predict?k=99", files=upload("c.jpg", cat_jpeg))
    assert response.status_code == 422
    assert response.json() == {"detail": "query k: Input should be less than or equal to 50"}


def test_full_queues_answer_503_with_retry_after(lite0, cat_jpeg):
    with TestClient(create_app(backbone=lite0, max_pending=0)) as busy:
        response = busy.post("/api/predict", files=upload("c.jpg", cat_jpeg))
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "waiting" in response.json()["detail"]
        assert busy.get("/api/health").status_code == 200  # cheap routes never queue
        # Shed before the upload is read: a body that is not even multipart gets 503, not 4xx.
        response = busy.post("/api/search", content=b"not multipart at all",
                             headers={"content-type": "multipart/form-data; boundary=x"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "server-timing" in response.headers and "nosniff" in response.headers[
            "x-content-type-options"]
