"""``transferkit.load(path)`` opens every kind of saved artefact by the format it records."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

import transferkit as tk
from transferkit.autoencoders import PCAAutoencoder
from transferkit.backbones import Backbone
from transferkit.data import list_images, load_fashion_mnist
from transferkit.features import Embeddings, embed_paths
from transferkit.heads import ArrayHead, make_head
from transferkit.runtime import OnnxBackbone, export_backbone
from transferkit.search import ImageIndex, build_index
from transferkit.text import TextIndex, build_text_index, create_text_encoder
from transferkit.train import TransferModel, fit

TEXTS = ["the cat sat on the mat", "a dog barked at the cat", "stocks fell sharply today",
         "markets rallied after the news", "the dog chased a ball"]


@pytest.fixture(scope="module")
def small_lite0(lite0):
    return lite0.with_image_size(64)


def test_load_opens_each_saved_artefact_as_its_class(tmp_path, small_lite0, photos_dir,
                                                     fashion_mini):
    X, y = load_digits(return_X_y=True)
    head = make_head("logreg").fit(X, y)
    head.save(tmp_path / "head")
    small_lite0.save(tmp_path / "body")
    emb = embed_paths(list_images(photos_dir), small_lite0, engine="torch",
                      show_progress=False)
    emb.save(tmp_path / "photos.parquet")
    build_index(tmp_path / "photos.parquet", output=tmp_path / "photos.tkindex")
    create_text_encoder("tfidf").fit(TEXTS).save(tmp_path / "tfidf")
    build_text_index(TEXTS, "tfidf", output=tmp_path / "texts.tkindex")
    images, _ = load_fashion_mnist("test", limit=64)
    PCAAutoencoder(8).fit(images).save(tmp_path / "pca")
    fit(fashion_mini, small_lite0, "logreg", tmp_path / "model")
    export_backbone(small_lite0, tmp_path / "body.onnx")

    expected = {"head": ArrayHead, "body": Backbone, "photos.parquet": Embeddings,
                "photos.tkindex": ImageIndex, "texts.tkindex": TextIndex, "pca": PCAAutoencoder,
                "model": TransferModel, "body.onnx": OnnxBackbone}
    for name, cls in expected.items():
        assert isinstance(tk.load(tmp_path / name), cls), name
    assert tk.load(tmp_path / "tfidf").spec()["encoder"] == "sklearn-tfidf"
    np.testing.assert_array_equal(tk.load(tmp_path / "head").predict_proba(X),
                                  head.predict_proba(X))
    assert len(tk.load(tmp_path / "photos.tkindex")) == len(emb)


def test_load_names_what_is_not_an_artefact(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here: no such file"):
        tk.load(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: not a transferkit artefact"):
        tk.load(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "manifest.json").write_text('{"format": "transferkit-future/9"}')
    with pytest.raises(ValueError, match="transferkit-future/9.*is not one this"):
        tk.load(tmp_path / "odd")
