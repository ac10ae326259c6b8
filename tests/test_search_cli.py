"""`transferkit index build/add/remove/info`, `search`, `dedupe`, `bench-search` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from transferkit.cli import app

runner = CliRunner()


def _run(*args: str, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos_dir) -> Path:
    root = tmp_path_factory.mktemp("cli_photos")
    for name in ("chelsea", "coffee", "rocket"):
        shutil.copy(photos_dir / f"{name}.jpg", root / f"{name}.jpg")
    (root / "notes.png").write_bytes(b"not a png at all")
    return root


@pytest.fixture(scope="module")
def index_file(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli_index") / "photos.tkindex"
    result = _run("index", "build", folder, "-o", out, "--image-size", "64", "--workers", "0")
    assert "indexed 3 images" in result.output and "notes.png" in result.output
    return out


def test_build_info_search_with_contact_sheet(index_file, folder, tmp_path):
    info = json.loads(_run("index", "info", index_file, "--json").stdout)
    assert info["size"] == 3 and info["spec"]["preprocessing"]["input_size"] == 64
    assert "efficientnet_lite0" in _run("index", "info", index_file).stdout
    sheet = tmp_path / "sheet.png"
    out = _run("search", index_file, folder / "coffee.jpg", "-k", "2", "--json",
               "--sheet", sheet).stdout
    hits = json.loads(out)["hits"]
    assert len(hits) == 2 and Path(hits[0]["path"]).name == "coffee.jpg"
    assert hits[0]["distance"] < 1e-3 <= hits[1]["distance"]
    assert Image.open(sheet).format == "PNG"
    table = _run("search", index_file, folder / "rocket.jpg", "-k", "1").stdout
    assert "rocket.jpg" in table and "1." in table


def test_add_remove_then_search(index_file, folder, tmp_path):
    edited = tmp_path / "edited.tkindex"
    shutil.copy(index_file, edited)
    copy = tmp_path / "coffee_small.jpg"
    Image.open(folder / "coffee.jpg").resize((300, 200)).save(copy, quality=70)
    assert "added 1 images" in _run("index", "add", edited, copy, folder / "chelsea.jpg").output
    hits = json.loads(_run("search", edited, copy, "-k", "2", "--json").stdout)["hits"]
    assert [Path(h["path"]).name for h in hits] == ["coffee_small.jpg", "coffee.jpg"]
    out = _run("index", "remove", edited, str(hits[1]["id"]), str(folder / "rocket.jpg")).output
    assert "removed 2" in out
    hits = json.loads(_run("search", edited, copy, "-k", "5", "--json").stdout)["hits"]
    assert {Path(h["path"]).name for h in hits} == {"coffee_small.jpg", "chelsea.jpg"}
    assert "dropped" in _run("index", "compact", edited).output
    assert json.loads(_run("index", "info", edited, "--json").stdout)["tombstones"] == 0


def test_user_errors_exit_2_with_the_file_named(index_file, folder, tmp_path):
    bad = _run("search", index_file, folder / "notes.png", code=2)
    assert "notes.png" in bad.output and "error" in bad.output
    missing = _run("search", tmp_path / "nope.tkindex", folder / "coffee.jpg", code=2)
    assert "nope.tkindex" in missing.output
    assert "ids not in the index" in _run("index", "remove", index_file, "999", code=2).output


def test_dedupe_command(folder, tmp_path):
    work = tmp_path / "d"
    shutil.copytree(folder, work)
    Image.open(work / "chelsea.jpg").save(work / "chelsea_copy.jpg", quality=50)
    out = _run("dedupe", work, "--image-size", "64", "--threshold", "0.1", "--json").stdout
    report = json.loads(out)
    assert [sorted(Path(p).name for p in g["paths"]) for g in report["groups"]] == \
        [["chelsea.jpg", "chelsea_copy.jpg"]]
    assert [Path(f["path"]).name for f in report["failures"]] == ["notes.png"]


def test_bench_search_small_run(tmp_path):
    out = _run("bench-search", "--base", "2000", "--queries", "200", "--ef", "16",
               "--ef", "64", "--no-embeddings", "--exact-queries", "100",
               "-o", tmp_path).stdout
    assert "exact (brute force)" in out and "ef=64" in out and "overhead" in out
    rows = json.loads((tmp_path / "bench_search.json").read_text())
    assert [(r["method"], r["param"]) for r in rows] == [
        ("exact (brute force)", "-"), ("hnsw uint8 (tk)", "ef=16"), ("hnsw uint8 (tk)", "ef=64"),
        ("hnsw float32 (tk)", "ef=16"), ("hnsw float32 (tk)", "ef=64")]
    assert rows[0]["recall"] == 1.0 and rows[2]["recall"] >= rows[1]["recall"] >= 0.5
    assert all(r["qps"] > 0 and r["cpu_qps"] > 0 for r in rows)
    assert Image.open(tmp_path / "recall_qps.png").format == "PNG"
