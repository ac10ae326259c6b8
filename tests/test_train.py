"""Frozen-feature transfer learning end to end on the committed fashion-mini images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from transferkit.train import (
    fit,
    load_csv,
    load_image_folder,
    load_model,
    stratified_split,
    tuxpaint_dataset,
)

SIZE = 64  # 28 px Fashion-MNIST upscaled; fast and accurate enough


@pytest.fixture(scope="module")
def logreg_model(fashion_mini, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "logreg"
    model = fit(fashion_mini, strategy="logreg", output=out, image_size=SIZE,
                test_fraction=0.25)
    return model, out


def _valid_png(path: Path) -> None:
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        img.verify()
        assert img.format == "PNG"


def test_split_is_stratified_seeded_and_keeps_every_class(fashion_mini):
    data = load_image_folder(fashion_mini)
    assert len(data) == 120 and len(data.classes) == 10
    a = stratified_split(data.labels, 0.2, 0.25, seed=1)
    b = stratified_split(data.labels, 0.2, 0.25, seed=1)
    c = stratified_split(data.labels, 0.2, 0.25, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test),
                                                     (b.train, b.val, b.test)))
    assert not np.array_equal(a.test, c.test)
    assert a.sizes() == {"train": 70, "val": 20, "test": 30}
    assert set(np.concatenate([a.train, a.val, a.test]).tolist()) == set(range(120))
    labels = np.asarray(data.labels)
    for part in (a.train, a.val, a.test):
        assert len(set(labels[part])) == 10  # 12 per class: every class on every side


def test_logreg_head_end_to_end(logreg_model):
    model, out = logreg_model
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == model.classes_ and len(model.classes_) == 10
    assert manifest["backbone"]["preprocessing"]["input_size"] == SIZE
    assert manifest["data"]["split_sizes"]["test"] == 30
    # 30 held-out images, 10 classes: chance is 10%; Lite0 features give ~55-60%
    assert manifest["metrics"]["test_accuracy"] >= 0.35
    assert list((out / "head_0").glob("*.safetensors"))
    report = json.loads((out / "report" / "report.json").read_text())
    assert set(report["per_class"]) == set(model.classes_)
    assert np.asarray(report["confusion_matrix"]).sum() == 30
    assert {"precision", "recall"} <= set(report["per_class"]["Bag"])
    _valid_png(out / "report" / "confusion_matrix.png")


def test_saved_model_predicts_identically(logreg_model, fashion_mini):
    model, out = logreg_model
    loaded = load_model(out)
    assert loaded.classes_ == model.classes_ and loaded.directory == out
    assert loaded.spec_["weights_id"] == model.spec_["weights_id"]
    files = sorted(fashion_mini.glob("*/*.png"))[::7]
    images = [Image.open(f) for f in files]
    np.testing.assert_allclose(loaded.predict_proba_images(images),
                               model.predict_proba_images(images), rtol=1e-5, atol=1e-6)
    top = loaded.predict_images(images[:2], top_k=3)
    assert len(top) == 2 and len(top[0]) == 3
    assert top[0][0]["probability"] >= top[0][1]["probability"] >= top[0][2]["probability"]
    assert set(top[0][0]) == {"label", "probability"}


def test_predict_paths_skips_and_reports_bad_files(logreg_model, fashion_mini, tmp_path):
    _, out = logreg_model
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = sorted((fashion_mini / "Trouser").glob("*.png"))[:3]
    results, failures = load_model(out).predict_paths([*good, bad], top_k=2)
    assert [r["path"] for r in results] == [str(p) for p in good]
    assert failures and failures[0][0] == str(bad)
    # trousers are the easiest Fashion-MNIST class
    assert sum(r["top_k"][0]["label"] == "Trouser" for r in results) >= 2


def test_csv_mlp_via_cli_then_predict_and_evaluate(fashion_mini, tmp_path):
    from transferkit.cli import app

    csv_path = tmp_path / "labels.csv"
    rows = ["path,label"] + [f"{p},{p.parent.name}" for p in sorted(fashion_mini.glob("*/*.png"))]
    csv_path.write_text("\n".join(rows) + "\n")
    assert len(load_csv(csv_path)) == 120
    runner = CliRunner()
    out = tmp_path / "mlp-model"
    result = runner.invoke(app, ["train", str(csv_path), "--strategy", "mlp", "--image-size",
                                 str(SIZE), "-o", str(out), "--head-param", "epochs=40"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    _valid_png(out / "report" / "learning_curve.png")
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    result = runner.invoke(app, ["predict", str(out), str(fashion_mini / "Bag"), str(bad),
                                 "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert len(payload["results"]) == 12 and payload["failures"][0]["path"] == str(bad)
    assert sum(r["top_k"][0]["label"] == "Bag" for r in payload["results"]) >= 6
    report_dir = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(out), str(fashion_mini), "-o", str(report_dir)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((report_dir / "report.json").read_text())
    assert metrics["n"] == 120 and metrics["accuracy"] > 0.5  # mostly its own training data
    _valid_png(report_dir / "confusion_matrix.png")


def test_user_given_splits_are_respected(fashion_mini, tmp_path):
    root = tmp_path / "split"
    for cls in ("Bag", "Trouser", "Sneaker"):
        files = sorted((fashion_mini / cls).glob("*.png"))
        for split, chunk in (("train", files[:8]), ("test", files[8:])):
            (root / split / cls).mkdir(parents=True)
            for f in chunk:
                shutil.copy(f, root / split / cls / f.name)
    data = load_image_folder(root)
    assert data.splits is not None and data.splits.count("test") == 12
    model = fit(root, strategy="logreg", image_size=SIZE)
    assert model.manifest["data"]["split_sizes"]["test"] == 12
    assert model.metrics_["test_accuracy"] >= 0.75  # 3 easy, distinct classes


def test_average_ensemble_of_two_backbones(fashion_mini, tmp_path):
    out = tmp_path / "ens"
    model = fit(fashion_mini, strategy="logreg", output=out, image_size=48,
                ensemble="efficientnet_lite0,efficientnet_lite1", ensemble_mode="average",
                test_fraction=0.25)
    assert len(model.heads) == 2 and model.spec_["name"] == \
        "efficientnet_lite0+efficientnet_lite1"
    assert model.metrics_["test_accuracy"] >= 0.3
    loaded = load_model(out)
    image = Image.open(next((fashion_mini / "Sandal").glob("*.png")))
    np.testing.assert_allclose(loaded.predict_proba_images([image]),
                               model.predict_proba_images([image]), rtol=1e-5, atol=1e-6)


def test_clear_errors_for_bad_data(tmp_path):
    from transferkit.cli import app

    with pytest.raises(FileNotFoundError, match="nope"):
        fit(tmp_path / "nope")
    (tmp_path / "only" / "one").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "one" / "a.png")
    with pytest.raises(ValueError, match="at least 2"):
        fit(tmp_path / "only")
    with pytest.raises(ValueError, match="unknown strategy"):
        fit(tmp_path / "only", strategy="svm")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope" in result.output


def test_tuxpaint_loader_reads_the_installed_package():
    data = tuxpaint_dataset()
    counts = data.counts()
    assert len(counts) == 8 and min(counts.values()) >= 30
    assert all(p.endswith(".png") and not p.endswith("_mirror.png") for p in data.paths)
    assert all(p.startswith("/usr/share/tuxpaint/stamps/") for p in data.paths)
    small = tuxpaint_dataset(max_per_class=5)
    assert len(small) == 40 and set(small.paths) <= set(data.paths)
