"""Text similarity index on the search package's VectorIndex: real MiniLM, real fortunes."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.search import ImageIndex, IncompatibleModelError, VectorIndex
from transferkit.text import IncompatibleModelError as TextModelMismatch
from transferkit.text import (
    TextIndex,
    build_text_index,
    create_text_encoder,
    encoder_dir_for,
    is_text_index,
    load_fortunes,
)

EXTRA = [
    "The quick brown fox jumps over the lazy dog.",
    "My laptop battery dies after only an hour of use.",
    "Beam me up, there is no intelligent life down here.",
]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return load_fortunes(["startrek", "food", "computers", "law"], max_per_category=15,
                         max_chars=300).texts + EXTRA


@pytest.fixture(scope="module")
def minilm_index(corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("tidx") / "quotes.tkindex"
    return build_text_index(corpus, "minilm", method="hnsw", output=path)


def test_exact_text_comes_first(minilm_index, corpus):
    hits = minilm_index.search_texts([corpus[3], corpus[40]], k=3)
    assert [h[0].text for h in hits] == [corpus[3], corpus[40]]
    assert hits[0][0].score > 0.99 and hits[0][1].score < hits[0][0].score


def test_paraphrase_finds_its_source(minilm_index):
    queries = ["A fast brown fox leaps over a sleepy dog.",
               "My notebook computer's battery only lasts sixty minutes.",
               "Teleport me out, nobody down here is smart."]
    hits = minilm_index.search_texts(queries, k=1)
    assert [h[0].text for h in hits] == EXTRA


def test_saved_minilm_index_reopens_from_spec_alone(minilm_index):
    path = minilm_index.path
    assert is_text_index(path) and not encoder_dir_for(path).exists()  # no copy of weights
    again = TextIndex.load(path)
    assert len(again) == len(minilm_index) and again.spec["kind"] == "text"
    assert again.search_texts(EXTRA[1])[0][0].text == EXTRA[1]


def test_tfidf_index_keeps_its_vocabulary_beside(tmp_path, corpus):
    path = tmp_path / "tfidf.tkindex"
    built = build_text_index(corpus, "tfidf", method="exact", output=path)
    assert (encoder_dir_for(path) / "vocabulary.json").exists()
    reopened = TextIndex.load(path)
    query = "laptop battery"
    assert reopened.search_texts(query, k=1)[0][0].text == EXTRA[1]
    assert reopened.encoder.spec() == built.encoder.spec()
    with pytest.raises(ValueError, match="none of its words is in the index"):
        reopened.search_texts("xyzzy plugh")
    import shutil

    shutil.rmtree(encoder_dir_for(path))
    with pytest.raises(FileNotFoundError, match="TF-IDF encoder not found"):
        TextIndex.load(path).search_texts(query)


def test_add_remove_and_skip_unembeddable(tmp_path, corpus):
    index = build_text_index(corpus[:10], "tfidf", method="exact")
    ids = index.add_texts(["the of and", "garlic bread recipe", corpus[0].upper()])
    assert len(ids) == 1 and len(index) == 11
    assert index.failures == [("the of and", "no word known to the encoder"),
                              ("garlic bread recipe", "no word known to the encoder")]
    hits = index.search_texts(corpus[0], k=2)[0]
    assert {h.text for h in hits} == {corpus[0], corpus[0].upper()}  # lowercased: same vector
    index.remove(ids)
    assert corpus[0].upper() not in index.texts and len(index) == 10


def test_image_and_text_indexes_refuse_each_other(tmp_path, minilm_index, lite0):
    image_index = VectorIndex(lite0.num_features, method="exact",
                              spec={**lite0.spec(), "kind": "image"})
    image_index.add(np.random.default_rng(0).normal(size=(3, lite0.num_features)), ["a", "b",
                                                                                    "c"])
    image_index.save(tmp_path / "img.tkindex")
    assert not is_text_index(tmp_path / "img.tkindex")
    with pytest.raises(TextModelMismatch, match="not a text index"):
        TextIndex.load(tmp_path / "img.tkindex")
    with pytest.raises(ValueError, match="not an image index"):
        ImageIndex.load(minilm_index.path)
    with pytest.raises(TextModelMismatch, match="cannot be queried with image"):
        minilm_index.search_vectors(np.zeros((1, 384), np.float32), spec=lite0.spec())
    tfidf = create_text_encoder("tfidf").fit(EXTRA)
    with pytest.raises(IncompatibleModelError):
        minilm_index.search_vectors(np.ones((1, 384), np.float32), spec=tfidf.spec())
