"""Single-object localisation: the class + box head on frozen Lite0 maps, on the drawn fixture
(Fashion-MNIST items and shapes on textures), at 96 px."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from transferkit.dense import load_boxes, write_fixture
from transferkit.dense.boxes import boxes_from_masks
from transferkit.dense.localize import Localizer, mean_box_metrics
from transferkit.errors import TrainingInterrupted

SIZE = 96
FAST = {"image_size": SIZE, "epochs": 25, "augment_views": 3, "batch_size": 16}


@pytest.fixture(scope="module")
def boxes_fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("loc-fixture")
    write_fixture(root, n=40, size=SIZE, seed=3, n_val=12, n_test=16)
    return {split: load_boxes(root / split / "boxes.csv") for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def fitted(boxes_fixture, lite0):
    return Localizer(lite0, **FAST).fit(boxes_fixture["train"], boxes_fixture["val"])


def test_fit_beats_the_mean_box_and_boxes_stay_in_the_image(fitted, boxes_fixture):
    test = boxes_fixture["test"]
    metrics = fitted.evaluate(test)
    floor = mean_box_metrics(boxes_fixture["train"], test)
    assert metrics["n"] == len(test.samples) == 16
    assert metrics["box_iou"] > floor["box_iou"] + 0.15, (metrics, floor)
    assert metrics["accuracy_iou50"] > floor["accuracy_iou50"]
    assert metrics["class_accuracy"] >= 0.6
    for result in fitted.predict([s.image for s in test.samples]):
        x, y, w, h = result.box
        assert result.label in fitted.classes_ and 0 < result.probability <= 1
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= SIZE + 1e-3 and y + h <= SIZE + 1e-3


def test_save_load_gives_identical_predictions(fitted, boxes_fixture, tmp_path):
    import transferkit

    paths = [s.image for s in boxes_fixture["test"].samples[:6]]
    fitted.save(tmp_path / "loc")
    manifest = json.loads((tmp_path / "loc" / "manifest.json").read_text())
    assert manifest["format"] == "transferkit-localizer/1"
    assert manifest["spec"]["name"] == "efficientnet_lite0" and manifest["image_size"] == SIZE
    assert manifest["classes"] == fitted.classes_ and "cxcywh" in manifest["box_format"]
    for loaded in (Localizer.load(tmp_path / "loc"), transferkit.load(tmp_path / "loc")):
        assert isinstance(loaded, Localizer)
        assert loaded.predict(paths) == fitted.predict(paths)


def test_onnx_export_matches_torch(fitted, tmp_path):
    from transferkit.dense.localize import LocalizerGraph
    from transferkit.runtime import OnnxBackbone

    path = fitted.export_onnx(tmp_path / "loc.onnx")
    batch = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        probs, boxes = LocalizerGraph(fitted.encoder_, fitted.head_, fitted.levels)(batch)
    session = OnnxBackbone(path)
    out = session.run(batch)
    assert session.class_names == fitted.classes_
    np.testing.assert_allclose(out["probabilities"], probs.numpy(), atol=1e-4)
    np.testing.assert_allclose(out["boxes"], boxes.numpy(), atol=1e-4)


def test_resume_continues_from_the_checkpoint(boxes_fixture, lite0, tmp_path):
    train, val = boxes_fixture["train"], boxes_fixture["val"]
    knobs = {**FAST, "epochs": 5, "patience": 99, "augment": False,
             "checkpoint": tmp_path / "run.ckpt"}
    with pytest.raises(TrainingInterrupted):
        Localizer(lite0, stop_after_epochs=2, **knobs).fit(train, val)
    state = json.loads((tmp_path / "run.ckpt" / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2
    resumed = Localizer(lite0, resume=True, **knobs).fit(train, val)
    straight = Localizer(lite0, **{**knobs, "checkpoint": tmp_path / "other.ckpt"}).fit(train, val)
    assert [row["epoch"] for row in resumed.history_] == [1, 2, 3, 4, 5]
    assert [row["train_loss"] for row in resumed.history_] == pytest.approx(
        [row["train_loss"] for row in straight.history_], rel=1e-4)
    paths = [s.image for s in boxes_fixture["test"].samples[:4]]
    for a, b in zip(resumed.predict(paths), straight.predict(paths)):
        assert a.label == b.label and a.box == pytest.approx(b.box, abs=1e-3)


def test_resume_refuses_another_runs_checkpoint(boxes_fixture, lite0, tmp_path):
    knobs = {**FAST, "epochs": 3, "augment_views": 1, "checkpoint": tmp_path / "run.ckpt"}
    with pytest.raises(TrainingInterrupted):
        Localizer(lite0, stop_after_epochs=1, **knobs).fit(boxes_fixture["train"])
    with pytest.raises(ValueError, match="another run"):
        Localizer(lite0, resume=True, **{**knobs, "width": 32}).fit(boxes_fixture["train"])


def test_boxes_from_masks_gives_the_exact_box_of_the_largest_blob():
    masks = np.zeros((3, 60, 80), np.uint8)
    masks[0, 10:30, 20:50] = 1          # rows 10..29, columns 20..49
    masks[0, 50:52, 70:72] = 1          # a stray blob: ignored
    masks[1, 0:60, 0:1] = 1             # a one-pixel-wide column at the border
    boxes = boxes_from_masks(masks)     # masks[2] is empty
    assert boxes.tolist() == [[20.0, 10.0, 50.0, 30.0], [0.0, 0.0, 1.0, 60.0], [0.0] * 4]


def test_cli_evaluate_skips_and_lists_bad_rows(fitted, boxes_fixture, tmp_path):
    from transferkit.cli import app

    fitted.save(tmp_path / "loc")
    test = boxes_fixture["test"]
    csv = test.root / "boxes_with_bad_rows.csv"
    rows = (test.root / "boxes.csv").read_text().splitlines()
    rows += ["images/missing.png,ellipse,1,1,10,10", "images/00000.png,ellipse,80,80,40,40"]
    rows.remove(next(r for r in rows if r.startswith("images/00000.png")))
    csv.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["localize", "evaluate", str(tmp_path / "loc"), str(csv),
                                      "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "box IoU" in result.output and "accuracy@IoU0.5" in result.output
    assert "missing.png: missing image" in result.output
    assert "is outside the 96x96 image" in result.output
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["n"] == len(test.samples) - 1 and len(metrics["failures"]) == 2
    for name in ("overlays.png", "training_curve.png", "predictions.csv"):
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_cli_train_then_predict(boxes_fixture, tmp_path):
    from transferkit.cli import app

    train = boxes_fixture["train"]
    csv = train.root / "boxes_cli.csv"
    csv.write_text((train.root / "boxes.csv").read_text() + "images/gone.jpg,bag,0,0,9,9\n")
    model = tmp_path / "model"
    result = CliRunner().invoke(app, ["localize", "train", str(csv), "-o", str(model),
                                      "--image-size", str(SIZE), "--epochs", "4",
                                      "--no-augment", "--val-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    assert "gone.jpg: missing image" in result.output and "accuracy@IoU0.5" in result.output
    assert (model / "report" / "overlays.png").exists()
    assert not model.with_name("model.ckpt").exists()  # removed once the model is saved
    images = [str(s.image) for s in boxes_fixture["test"].samples[:3]]
    (tmp_path / "not-an-image.txt").write_text("notes")
    result = CliRunner().invoke(app, ["localize", "predict", str(model), *images,
                                      str(tmp_path / "not-an-image.txt"), "-o",
                                      str(tmp_path / "pred"), "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pred" / "boxes.csv").read_text().count("\n") == 4  # header + 3
    assert len(list((tmp_path / "pred").glob("*.png"))) == 3
    saved = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [r["path"] for r in saved["results"]] == images
    assert all(len(r["box"]) == 4 and r["label"] in train.classes for r in saved["results"])


def test_fine_tuned_top_block_is_saved_and_the_shared_backbone_untouched(boxes_fixture, lite0,
                                                                          tmp_path):
    before = {k: v.clone() for k, v in lite0.model.blocks[6].state_dict().items()}
    model = Localizer(lite0, **{**FAST, "epochs": 4, "augment": False, "fine_tune_blocks": 1,
                                "fine_tune_epochs": 2, "patience": 99})
    model.fit(boxes_fixture["train"], boxes_fixture["val"])
    assert [row.get("phase") for row in model.history_[-2:]] == ["fine-tune"] * 2
    for key, value in lite0.model.blocks[6].state_dict().items():
        assert torch.equal(value, before[key]), key
    trained = model._trained_encoder_state()
    assert trained and any(not torch.equal(v, before[k.split(".", 2)[2]])
                           for k, v in trained.items() if k.split(".", 2)[2] in before)
    model.save(tmp_path / "ft")
    assert (tmp_path / "ft" / "encoder.safetensors").exists()
    paths = [s.image for s in boxes_fixture["test"].samples[:4]]
    assert Localizer.load(tmp_path / "ft").predict(paths) == model.predict(paths)
