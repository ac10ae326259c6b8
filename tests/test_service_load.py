"""Concurrent clients against a real uvicorn server on loopback: no 5xx, bad input gets 4xx.

Bounded: a fixed number of requests and a hard deadline. Latency numbers are printed (run
with -s) but not asserted; speed targets live in benchmarks/bench_service.py.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from _service_support import built_index, live_server

from transferkit.service import create_app
from transferkit.service.loadtest import (
    probe_process,
    run_load,
    server_seconds,
    standard_calls,
)

LIMIT = 1_000_000
REQUESTS = 160
CLIENTS = 6
TIME_LIMIT_S = 60.0


@pytest.fixture(scope="module")
def index_path(tmp_path_factory, lite0, photos_dir, fashion_mini) -> str:
    return built_index(tmp_path_factory, lite0, photos_dir, fashion_mini)


def test_concurrent_clients_get_correct_answers(lite0, index_path, photos_dir):
    image = (photos_dir / "chelsea.jpg").read_bytes()
    calls = standard_calls(image, REQUESTS, with_search=True, oversized_bytes=int(LIMIT * 1.3))
    assert sum(c.expect == "4xx" for c in calls) >= REQUESTS // 6
    app = create_app(index_path=index_path, backbone=lite0, max_upload_bytes=LIMIT)
    with live_server(app) as url:
        report = run_load(url, calls, clients=CLIENTS, time_limit=TIME_LIMIT_S)
    print("\n" + report.table())
    assert report.not_sent == 0, f"deadline hit: {report.not_sent} requests never sent"
    assert len(report.outcomes) == REQUESTS
    assert report.wall_seconds < TIME_LIMIT_S + 30
    assert report.server_errors == 0 and report.transport_errors == 0
    assert report.wrong_answers == []
    kinds = {o.kind for o in report.outcomes}
    assert {"predict", "search", "embed", "thumbnail", "health", "bad:text", "bad:truncated",
            "bad:empty", "bad:too-big", "bad:k"} <= kinds
    assert all(400 <= o.status < 500 for o in report.outcomes if o.kind.startswith("bad:"))


def test_full_queue_answers_503_not_a_hang(lite0, photos_dir):
    """With room for one waiting request, a burst gets 503 + Retry-After for the rest."""
    image = (photos_dir / "coffee.jpg").read_bytes()
    app = create_app(backbone=lite0, max_pending=1)
    calls = standard_calls(image, 24, with_search=False, oversized_bytes=None, bad_fraction=0)
    calls = [c for c in calls if c.kind == "predict"]
    with live_server(app) as url:
        # What was loaded at start is kept out of the collector's full passes while serving.
        assert gc.get_freeze_count() > 100_000
        with probe_process(url, ["/api/health"], interval=0.01) as probed:
            report = run_load(url, calls, clients=8, time_limit=TIME_LIMIT_S)
        # The load generator freezes too (same process here); its end must not undo the app's.
        assert gc.get_freeze_count() > 100_000
    assert gc.get_freeze_count() == 0  # given back at shutdown
    statuses = report.statuses
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 1 and statuses[503] >= 1, statuses
    assert report.still_busy == statuses[503] and report.server_errors == statuses[503]
    assert report.transport_errors == 0
    # A separate caller of a cheap route is answered throughout the burst (200, never 503).
    health = np.asarray(probed["/api/health"])
    assert len(health) >= 3 and not np.isnan(health).any()


def test_upload_limit_holds_for_streamed_and_large_bodies(lite0):
    """413 arrives intact (no connection reset) for big declared and chunked bodies."""
    import httpx

    app = create_app(backbone=lite0, max_upload_bytes=LIMIT)
    head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n")

    def chunked_body():
        yield head
        for _ in range(300):  # 3 MB in 10 kB chunks, no Content-Length
            yield b"\0" * 10_000
        yield b"\r\n--b--\r\n"

    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        response = client.post("/api/predict", content=chunked_body(),
                               headers={"content-type": "multipart/form-data; boundary=b"})
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert response.status_code == 413 and "too large" in response.json()["detail"]
        big = {"file": ("big.jpg", b"\0" * (8 * LIMIT), "image/jpeg")}
        response = client.post("/api/predict", files=big)
        assert response.status_code == 413 and "too large" in response.json()["detail"]
        # The same connection pool keeps working afterwards.
        assert client.get("/api/health").status_code == 200


def test_async_clients_get_correct_answers_and_server_timing(lite0, index_path, photos_dir):
    """The event-loop driver sends the same mix; every answer says how long the server took,
    which is never more than the client waited."""
    image = (photos_dir / "chelsea.jpg").read_bytes()
    calls = standard_calls(image, 48, with_search=True, oversized_bytes=int(LIMIT * 1.3))
    app = create_app(index_path=index_path, backbone=lite0, max_upload_bytes=LIMIT)
    with live_server(app) as url:
        report = run_load(url, calls, clients=CLIENTS, time_limit=TIME_LIMIT_S,
                          driver="async")
    print("\n" + report.table())
    assert len(report.outcomes) == 48 and report.not_sent == 0
    assert report.wrong_answers == [] and report.server_errors == 0
    assert all(o.server_seconds is not None for o in report.outcomes)
    assert all(0 < o.server_seconds <= o.seconds for o in report.outcomes)
    health = report.percentiles("health", server=True)["p95"]
    predict = report.percentiles("predict", server=True)["p50"]
    assert health < predict  # a health check does no model work


def test_server_timing_header_parsing():
    assert server_seconds("app;dur=12.5") == 0.0125
    assert server_seconds("cache;desc=hit, app;dur=3") == 0.003
    assert server_seconds("db;dur=4") is None
    assert server_seconds(None) is None
    assert server_seconds("app;dur=abc") is None
