"""Text classification end to end: real fortunes, real MiniLM / TF-IDF, the shared heads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferkit.text import (
    TextDataset,
    load_fortunes,
    load_text_model,
    split_indices,
    train_text_classifier,
)

CATEGORIES = ["startrek", "food", "sports", "computers", "law", "love"]


@pytest.fixture(scope="module")
def fortunes() -> TextDataset:
    """6 topical fortune categories x 30 quotes (chance = 1/6)."""
    return load_fortunes(CATEGORIES, max_per_category=30, max_chars=400)


def test_split_is_stratified_and_disjoint(fortunes):
    train, test = split_indices(fortunes.labels, 0.4, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == len(fortunes)
    test_labels = [fortunes.labels[i] for i in test]
    assert {test_labels.count(c) for c in CATEGORIES} == {12}


def test_minilm_logreg_well_above_chance_and_roundtrip(tmp_path, fortunes):
    model = train_text_classifier(fortunes, "minilm", "logreg", test_size=0.4,
                                  output=tmp_path / "model")
    m = model.metrics
    assert m["n_test"] == 72 and m["n_classes"] == 6 and m["dim"] == 384
    assert m["accuracy"] > 0.6 > 3 * m["chance"], m
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["encoder"]["kind"] == "text" and manifest["encoder"]["name"] == "minilm"
    assert manifest["classes"] == sorted(CATEGORIES) and manifest["metrics"]["accuracy"] == \
        m["accuracy"]
    assert not list((tmp_path / "model").rglob("*.pkl"))
    back = load_text_model(tmp_path / "model")
    queries = ["Beam me up, Scotty! Set phasers to stun.",
               "The judge sentenced the lawyer for contempt of court.",
               "Bake the cake with butter, sugar and chocolate."]
    np.testing.assert_allclose(back.predict_proba(queries), model.predict_proba(queries),
                               atol=1e-5)
    assert back.predict(queries) == ["startrek", "law", "food"]
    top = back.predict_top(queries[:1], k=2)[0]
    assert top[0][0] == "startrek" and top[0][1] >= top[1][1]


@pytest.mark.parametrize("head", ["logreg", "mlp", "random_forest", "gradient_boosting"])
def test_tfidf_with_every_head(tmp_path, fortunes, head):
    params, enc = {}, {}
    if head == "gradient_boosting":
        # Histogram boosting needs >= 20 samples per leaf: sparse words of 108 quotes never
        # get there, so give it dense LSA features (TF-IDF + truncated SVD) instead.
        params, enc = {"max_iter": 30}, {"svd_components": 64}
    model = train_text_classifier(fortunes, "tfidf", head, test_size=0.4, head_params=params,
                                  encoder_params=enc, output=tmp_path / head)
    assert model.metrics["accuracy"] > 2 * model.metrics["chance"], model.metrics
    back = load_text_model(tmp_path / head)
    texts = fortunes.texts[:5]
    assert back.predict(texts) == model.predict(texts)
    assert back.encoder.spec() == model.encoder.spec()


def test_csv_training_and_errors(tmp_path, fortunes):
    import csv

    path = tmp_path / "quotes.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["quote", "topic"])
        writer.writerows(zip(fortunes.texts, fortunes.labels))
    model = train_text_classifier(path, "tfidf", "logreg", text_column="quote",
                                  label_column="topic", test_size=0.3, seed=1)
    assert model.classes == sorted(CATEGORIES) and model.metrics["n_test"] == 54
    with pytest.raises(ValueError, match="no label column 'label'"):
        train_text_classifier(path, "tfidf", text_column="quote")
    one = tmp_path / "one.csv"
    one.write_text("text,label\nhello there,a\ngood bye,a\n")
    with pytest.raises(ValueError, match="at least 2 classes"):
        train_text_classifier(one, "tfidf")
    with pytest.raises(ValueError, match="unknown head"):
        train_text_classifier(path, "tfidf", "svm", text_column="quote", label_column="topic")
    with pytest.raises(FileNotFoundError, match="not a saved text model"):
        load_text_model(tmp_path)
