"""The collection API on a real index and model: paged items with filters, an item's relative
path and neighbours, the cached 2-D map, near-duplicate groups, the model's mistakes, and
`transferkit serve DATA_FOLDER` indexing a folder before serving it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from transferkit.search import ImageIndex, build_index
from transferkit.service import create_app
from transferkit.service.catalog import shown_paths
from transferkit.service.projection import cache_path_for
from transferkit.train import fit


@pytest.fixture(scope="module")
def collection(tmp_path_factory, lite0, fashion_mini):
    """fashion-mini copied under one folder, plus a re-encoded copy of one sneaker (a
    near-duplicate); indexed with Lite0 and a logreg model trained on the same files."""
    root = tmp_path_factory.mktemp("collection")
    data = root / "clothes"
    shutil.copytree(fashion_mini, data)
    original = sorted((data / "Sneaker").glob("*.png"))[0]
    Image.open(original).convert("RGB").save(data / "Sneaker" / "copy-of-sneaker.jpg",
                                             quality=92)
    index = root / "clothes.tkindex"
    build_index(data, lite0, output=index, num_workers=0)
    model = root / "model"
    fit(data, strategy="logreg", image_size=64, output=model, num_workers=0, cache=False)
    return {"data": data, "index": index, "model": model, "original": original}


@pytest.fixture(scope="module")
def client(collection, lite0):
    app = create_app(index_path=collection["index"], model_dir=collection["model"],
                     backbone=lite0)
    with TestClient(app) as c:
        yield c


def ready_map(client) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = client.get("/api/map")
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "computing"
        time.sleep(0.1)
    raise AssertionError("map not ready in 60 s")


def test_items_are_paged_in_id_order_with_counts_per_label(client):
    first = client.get("/api/items?limit=50").json()
    assert first["total"] == 121
    assert first["labels"]["Sneaker"] == 13 and first["labels"]["Bag"] == 12
    assert sum(first["labels"].values()) == 121
    pages = [first] + [client.get(f"/api/items?offset={o}&limit=50").json() for o in (50, 100)]
    ids = [item["id"] for page in pages for item in page["items"]]
    assert len(ids) == 121 and ids == sorted(set(ids))
    assert client.get("/api/items?offset=500").json()["items"] == []


def test_items_filter_by_label_and_name(client):
    bags = client.get("/api/items", params={"label": "Bag", "limit": 100}).json()
    assert bags["total"] == 12 and {i["label"] for i in bags["items"]} == {"Bag"}
    copies = client.get("/api/items", params={"q": "COPY-of"}).json()
    assert [i["name"] for i in copies["items"]] == ["copy-of-sneaker.jpg"]
    both = client.get("/api/items", params={"label": "Bag", "q": "copy"}).json()
    assert both["total"] == 0
    assert client.get("/api/items", params={"label": "no such label"}).json()["total"] == 0


def test_item_detail_gives_a_path_relative_to_the_indexed_folder(client, collection):
    item = client.get("/api/items", params={"q": "copy-of"}).json()["items"][0]
    detail = client.get(f"/api/items/{item['id']}").json()
    assert detail["path"] == "Sneaker/copy-of-sneaker.jpg"
    assert str(collection["data"]) not in client.get(f"/api/items/{item['id']}").text
    assert detail["label"] == "Sneaker" and detail["thumbnail_url"] == f"/thumbnails/{item['id']}"
    assert client.get("/api/items/999999").status_code == 404


def test_paths_from_unrelated_places_show_only_their_folder():
    root, shown = shown_paths(["/srv/a/cats/1.jpg", "/home/b/dogs/2.jpg"])
    assert root == "" and shown == ["cats/1.jpg", "dogs/2.jpg"]


def test_similar_finds_the_near_duplicate_first(client):
    copy = client.get("/api/items", params={"q": "copy-of"}).json()["items"][0]
    body = client.get(f"/api/items/{copy['id']}/similar?k=5").json()
    assert len(body["hits"]) == 5 and copy["id"] not in [h["id"] for h in body["hits"]]
    assert body["hits"][0]["path"].startswith("Sneaker/train_")
    assert body["hits"][0]["distance"] < 0.05
    distances = [h["distance"] for h in body["hits"]]
    assert distances == sorted(distances)


def test_duplicates_group_the_reencoded_copy_with_its_original(client, collection):
    body = client.get("/api/duplicates?threshold=0.05").json()
    names = [{i["path"] for i in g["items"]} for g in body["groups"]]
    expected = {f"Sneaker/{collection['original'].name}", "Sneaker/copy-of-sneaker.jpg"}
    assert expected in names, names
    assert client.get("/api/duplicates?threshold=0").json()["total_groups"] == 0


def test_map_is_computed_once_then_read_from_its_cache_file(client, collection, lite0,
                                                            tmp_path):
    body = ready_map(client)
    assert body["method"] == "pca" and len(body["points"]) == 121
    assert {p["label"] for p in body["points"]} >= {"Bag", "Sneaker"}
    assert all(-1 <= p["x"] <= 1 and -1 <= p["y"] <= 1 for p in body["points"])
    cache = cache_path_for(collection["index"])
    stamp = cache.stat().st_mtime_ns
    again = create_app(index_path=collection["index"], backbone=lite0)
    with TestClient(again) as second:
        reused = second.get("/api/map")
        assert reused.status_code == 200 and reused.json()["cached"] is True
        assert reused.json()["points"] == body["points"]
    assert cache.stat().st_mtime_ns == stamp
    # a changed index (one image removed) is projected again, not served the stale map
    changed = tmp_path / "changed.tkindex"
    shutil.copy(collection["index"], changed)
    shutil.copy(cache, cache_path_for(changed))
    index = ImageIndex.load(changed)
    index.remove([int(index.ids[0])])
    index.save(changed)
    with TestClient(create_app(index_path=changed, backbone=lite0)) as third:
        fresh = ready_map(third)
    assert fresh["cached"] is False and len(fresh["points"]) == 120


def test_mistakes_are_ranked_by_loss_and_cells_list_their_images(client):
    body = client.get("/api/report/mistakes?limit=100").json()
    assert body["split"] == "test" and body["total"] == len(body["items"]) > 0
    losses = [m["loss"] for m in body["items"]]
    assert losses == sorted(losses, reverse=True)
    for m in body["items"]:
        assert m["true"] != m["predicted"] and m["id"] is not None
        assert m["probability_predicted"] >= m["probability_true"]
    report = client.get("/api/report").json()["report"]
    matrix, classes = report["confusion_matrix"], report["classes"]
    wrong = sum(matrix[i][j] for i in range(len(classes)) for j in range(len(classes)) if i != j)
    assert body["total"] == wrong
    worst = body["items"][0]
    cell = client.get("/api/report/confusion",
                      params={"true": worst["true"], "pred": worst["predicted"]}).json()
    i, j = classes.index(worst["true"]), classes.index(worst["predicted"])
    assert cell["total"] == matrix[i][j] and worst["name"] in [m["name"] for m in cell["items"]]
    diagonal = client.get("/api/report/confusion", params={"true": "Bag", "pred": "Bag"})
    assert diagonal.json()["total"] == matrix[classes.index("Bag")][classes.index("Bag")]
    refused = client.get("/api/report/confusion", params={"true": "Bag", "pred": "Cat"})
    assert refused.status_code == 400 and "unknown class 'Cat'" in refused.json()["detail"]


def test_without_an_index_the_collection_routes_say_so(lite0):
    with TestClient(create_app(backbone=lite0)) as bare:
        for url in ("/api/items", "/api/items/1", "/api/map", "/api/duplicates",
                    "/api/report/mistakes"):
            response = bare.get(url)
            assert response.status_code == 404 and response.json()["detail"], url


def test_serve_a_folder_indexes_it_first(tmp_path, fashion_mini):
    data = tmp_path / "two-classes"
    for name in ("Bag", "Trouser"):
        shutil.copytree(fashion_mini / name, data / name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TRANSFERKIT_QUIET": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transferkit", "serve", str(data),
                             "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        base, deadline, items = f"http://127.0.0.1:{port}", time.monotonic() + 180, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                items = httpx.get(base + "/api/items", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert items is not None, f"server did not come up (exit code {proc.poll()})"
        assert items["total"] == 24 and items["labels"] == {"Bag": 12, "Trouser": 12}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert (tmp_path / "two-classes.tkindex").is_file()
    assert "indexing" in output and "24/24 images" in output, output


def test_a_damaged_predictions_file_costs_only_the_mistakes_view(collection, lite0, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(collection["model"], model)
    (model / "report" / "predictions.json").write_text('{"split": "test", "paths": [')
    with TestClient(create_app(model_dir=model, backbone=lite0)) as c:
        assert c.get("/api/report").status_code == 200
        missing = c.get("/api/report/mistakes")
        assert missing.status_code == 404 and "predictions.json" in missing.json()["detail"]


def test_umap_projection_keeps_clusters_apart_and_auto_picks_it_when_installed():
    """The map's default (``auto``) is UMAP where umap-learn is installed; on two well
    separated blobs its 2-D points keep the blobs apart, as PCA's do."""
    import numpy as np

    from transferkit.service.projection import project, resolve_method

    pytest.importorskip("umap")
    assert resolve_method("auto") == "umap" and resolve_method("pca") == "pca"
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(0, 1, (150, 64)), rng.normal(6, 1, (150, 64))])
    for method in ("umap", "pca"):
        xy = project(blobs.astype(np.float32), method)
        assert xy.shape == (300, 2) and np.abs(xy).max() <= 1.0 + 1e-6
        first, second = xy[:150].mean(0), xy[150:].mean(0)
        spread = max(xy[:150].std(0).max(), xy[150:].std(0).max())
        assert np.linalg.norm(first - second) > 3 * spread, method
    with pytest.raises(ValueError, match="map method"):
        resolve_method("tsne")
