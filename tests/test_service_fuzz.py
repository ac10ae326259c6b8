"""Schema-driven fuzzing of the HTTP API: requests generated from the app's own OpenAPI
document (hypothesis), sent to a real app over a real index, model and text index.

For every request: no 5xx, the status is one the document lists for that route, error bodies
are ``ErrorResponse`` and 200 bodies match the route's response model. Both schema-valid and
out-of-schema values are generated (out-of-range numbers, unknown enum members, missing or
garbage uploads, wrong or missing tokens), so the documented 4xx answers are exercised too.
"""

from __future__ import annotations

import io
from collections import Counter
from urllib.parse import quote

import pytest
from _service_support import built_index, trained_dense_models, trained_model, write_gallery
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from transferkit.service import create_app
from transferkit.service.schemas import ErrorResponse

TOKEN = "fuzz-token-0123456789"
MAX_UPLOAD = 300_000
EXAMPLES_PER_ROUTE = 40
SEEN: Counter = Counter()  # (route, status) pairs answered, checked at the end


@pytest.fixture(scope="module")
def app(tmp_path_factory, lite0, photos_dir, fashion_mini):
    from transferkit.text import build_text_index

    text_index = tmp_path_factory.mktemp("fuzz-text") / "quotes.tkindex"
    build_text_index(["the cat sat on the mat", "bread and butter for breakfast",
                      "the court dismissed the case"], "tfidf", method="exact",
                     output=text_index)
    dense = trained_dense_models(tmp_path_factory, lite0)
    gallery = tmp_path_factory.mktemp("fuzz-gallery")
    write_gallery(gallery)
    return create_app(model_dir=trained_model(tmp_path_factory, fashion_mini),
                      segmenter_dir=dense["segmenter"], localizer_dir=dense["localizer"],
                      gallery_dir=gallery,
                      index_path=built_index(tmp_path_factory, lite0, photos_dir,
                                             fashion_mini),
                      text_index_path=text_index, backbone=lite0,
                      max_upload_bytes=MAX_UPLOAD, token=TOKEN)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client) -> dict:
    return client.get("/openapi.json").json()


def _operations() -> list[tuple[str, str]]:
    """Every documented route (``test_the_fuzzer_covers_every_route`` keeps this complete)."""
    return [("get", "/api/health"), ("post", "/api/predict"), ("post", "/api/embed"),
            ("post", "/api/search"), ("get", "/api/search-text"),
            ("get", "/thumbnails/{item_id}"), ("get", "/api/report"),
            ("get", "/api/report/{name}"), ("post", "/api/search-audio"),
            ("post", "/api/predict-audio"), ("get", "/api/items"),
            ("get", "/api/items/{item_id}"), ("get", "/api/items/{item_id}/similar"),
            ("get", "/api/map"), ("get", "/api/duplicates"), ("get", "/api/report/mistakes"),
            ("get", "/api/report/confusion"), ("get", "/lab/"), ("get", "/lab/{name}"),
            ("get", "/api/lab"), ("post", "/api/segment"), ("post", "/api/localize")]


# -- values from JSON Schema ------------------------------------------------------------------
def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy,
           percent: int = 80) -> st.SearchStrategy:
    """``valid`` in ``percent`` % of draws (hypothesis' own choice between branches favours
    the first one too strongly to rely on)."""
    return st.integers(0, 99).flatmap(lambda n: valid if n < percent else invalid)


def _integers(schema: dict) -> st.SearchStrategy:
    low, high = schema.get("minimum"), schema.get("maximum")
    near_low = st.integers(low, min(low + 200, high) if high is not None else low + 200) \
        if low is not None else st.integers(-200, 200)
    inside = st.one_of(near_low, st.integers(low, high))
    return mostly(inside, st.integers(-(2**70), 2**70))


def _strings(schema: dict) -> st.SearchStrategy:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    inside = st.text(min_size=low, max_size=min(high or 40, 40))
    if schema.get("examples"):
        inside = mostly(st.sampled_from(schema["examples"]), inside, 50)
    outside = st.one_of(st.just(""), st.text(min_size=high, max_size=high + 5)) if high \
        else st.just("")
    return mostly(inside, outside)


def value_for(schema: dict) -> st.SearchStrategy:
    """A value for a query/path parameter: mostly what the schema allows, sometimes not."""
    if "enum" in schema:
        wrong = st.integers() if schema.get("type") == "integer" else st.text(max_size=20)
        return mostly(st.sampled_from(schema["enum"]), wrong)
    if schema.get("type") == "integer":
        return _integers(schema)
    if schema.get("type") == "string":
        return _strings(schema)
    return st.text(max_size=20)


def _image_bytes(width: int, height: int, fmt: str, seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (10000, 9000)).save(buffer, format="PNG")
    return buffer.getvalue()


BOMB = _bomb_png()
images = st.builds(_image_bytes, st.integers(1, 48), st.integers(1, 48),
                   st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]),
                   st.integers(0, 1000))
uploads = mostly(images, st.one_of(
    images.flatmap(lambda data: st.integers(0, len(data) - 1).map(lambda n: data[:n])),
    st.binary(max_size=2000), st.just(BOMB), st.just(b"x" * (MAX_UPLOAD + 1))), 60)
WRONG_AUTH = ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="})
# 4 requests in 5 carry the right token, so most reach the route behind the check
auth_headers = st.integers(0, 99).map(
    lambda n: {"Authorization": f"Bearer {TOKEN}"} if n < 80 else WRONG_AUTH[n % 3])


def _request(data: st.DataObject, operation: dict, path: str) -> dict:
    params, url = {}, path
    for parameter in operation.get("parameters", []):
        if parameter["in"] not in ("path", "query"):
            continue
        required = parameter.get("required", False) or parameter["in"] == "path"
        if not required and data.draw(st.booleans(), label=f"omit {parameter['name']}"):
            continue
        value = data.draw(value_for(parameter["schema"]), label=parameter["name"])
        if parameter["in"] == "path":
            url = url.replace("{" + parameter["name"] + "}", quote(str(value), safe=""))
        else:
            params[parameter["name"]] = value
    request = {"url": url, "params": params,
               "headers": data.draw(auth_headers, label="auth")}
    if "requestBody" in operation and data.draw(st.integers(0, 9), label="body") > 0:
        name = data.draw(st.text(max_size=30), label="filename") or "upload"
        request["files"] = {"file": (name, data.draw(uploads, label="upload"),
                                     data.draw(st.sampled_from(["image/png", "text/plain",
                                                                "application/octet-stream"])))}
    return request


def _response_model(method: str, path: str):
    from transferkit.service.routes import ROUTERS

    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, APIRoute) and route.path == path and method.upper() in route.methods:
            return route.response_model
    raise AssertionError(f"no route {method} {path}")


@pytest.mark.parametrize("method,path", _operations())
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_answer_is_documented_and_well_formed(app, client, spec, method, path, data):
    operation = spec["paths"][path][method]
    request = _request(data, operation, path)
    response = client.request(method, **request)
    SEEN[(path, response.status_code)] += 1
    assert response.status_code < 500, (request["url"], response.text)
    assert str(response.status_code) in operation["responses"], (
        f"{method.upper()} {path} answered {response.status_code} (documented: "
        f"{sorted(operation['responses'])}) to {request['url']} {request['params']}: "
        f"{response.text[:200]}")
    if response.status_code >= 400:
        ErrorResponse.model_validate(response.json())
    elif response.headers["content-type"].startswith("application/json"):
        model = _response_model(method, path)
        if model is not None:
            model.model_validate(response.json())


def test_the_fuzzer_covers_every_route(spec):
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == set(_operations())


def test_the_fuzzer_reached_the_interesting_answers():
    """Runs after the fuzzing above: it must have seen successes and each kind of refusal."""
    statuses = {status for _, status in SEEN}
    assert {200, 401, 404, 413, 415, 422} <= statuses, SEEN
    for path in ("/api/predict", "/api/search", "/thumbnails/{item_id}", "/api/search-text",
                 "/api/segment", "/api/localize", "/api/lab"):
        assert SEEN[(path, 200)] > 0, (path, sorted(SEEN.items()))
    by_status = Counter()
    for (_, status), n in SEEN.items():
        by_status[status] += n
    print(f"fuzz: {sum(SEEN.values())} requests, by status {sorted(by_status.items())}")
