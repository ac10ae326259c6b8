"""Dense encoder and segmentation models on the real Lite0 backbone and small real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import transferkit
from transferkit.dense import (
    DenseEncoder,
    encode_dataset,
    load_pair,
    load_segmentation_folder,
    write_fixture,
)
from transferkit.dense.segment import NOT_EXPORTABLE, SegmentationModel, segmentation_metrics
from transferkit.dense.unet import UNPOOL_KINDS, UNetDecoder, Unpool
from transferkit.errors import InvalidOptionError, TrainingInterrupted


def test_encoder_gives_lite0_maps_at_strides_2_to_32(lite0):
    encoder = DenseEncoder(lite0)
    assert encoder.channels == [16, 24, 40, 112, 320]
    assert encoder.reductions == [2, 4, 8, 16, 32]
    images = encoder.normalize(torch.rand(2, 3, 128, 128))
    maps = encoder(images)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 64, 64), (24, 32, 32), (40, 16, 16),
                                                  (112, 8, 8), (320, 4, 4)]
    expected = lite0.model.forward_intermediates(images, indices=5, intermediates_only=True)
    for got, want in zip(maps, expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_cached_trunk_plus_trained_top_equals_the_whole_encoder(lite0):
    encoder = DenseEncoder(lite0, train_blocks=2).eval()
    assert encoder.num_parameters(trainable_only=True) < encoder.num_parameters()
    before = {k: v.clone() for k, v in lite0.model.state_dict().items()}
    images = encoder.normalize(torch.rand(3, 3, 64, 64))
    cached = encode_dataset(encoder, images, batch_size=2, dtype=torch.float32)
    live = encoder(images)
    for got, want in zip(encoder.forward_cached(cached), live):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    encoder.train()
    assert not encoder.units[0].training and encoder.units[-1].training
    for p in encoder.trainable_parameters():  # its own copies: the backbone never changes
        p.data.add_(1.0)
    assert all(torch.equal(v, lite0.model.state_dict()[k]) for k, v in before.items())


# -- the decoder ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", UNPOOL_KINDS)
def test_every_unpool_kind_gives_full_size_logits(lite0, kind):
    encoder = DenseEncoder(lite0)
    maps = encoder(encoder.normalize(torch.rand(2, 3, 64, 64)))
    decoder = UNetDecoder(encoder.channels, 3, kind)
    assert decoder(maps, (64, 64)).shape == (2, 3, 64, 64)
    assert decoder(maps).shape == (2, 3, 32, 32)  # the stride-2 map, before the final resize


def test_maxunpool_puts_values_where_the_skip_map_had_its_maxima():
    unpool = Unpool("maxunpool", 4, 4)
    with torch.no_grad():
        unpool.project.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        unpool.project.bias.zero_()
    skip = torch.rand(1, 4, 8, 8)
    out = unpool(torch.ones(1, 4, 4, 4), skip)
    _, indices = torch.nn.functional.max_pool2d(skip, 2, return_indices=True)
    assert out.shape == skip.shape and int(out.sum()) == 4 * 16
    assert bool((out.flatten(2).gather(2, indices.flatten(2)) == 1).all())


# -- the model on the committed-safe fixture --------------------------------------------------

SMALL = dict(image_size=64, epochs=6, patience=6, batch_size=8, lr=3e-3, seed=0)


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense-fixture")
    write_fixture(root, n=32, size=64, n_val=12, n_test=12, seed=0)
    return {split: load_segmentation_folder(root / split, binary=True)
            for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def fitted(lite0, fixture_data):
    return SegmentationModel(lite0, unpool="nearest", **SMALL).fit(fixture_data["train"],
                                                                    fixture_data["val"])


def test_fit_beats_the_all_foreground_and_all_background_masks(fitted, fixture_data):
    test = fixture_data["test"]
    metrics = fitted.evaluate(test)
    truths = [load_pair(s, 255, binary=True)[1] for s in test.samples]
    all_fg = segmentation_metrics([np.ones_like(t) for t in truths], truths, fitted.classes_)
    all_bg = segmentation_metrics([np.zeros_like(t) for t in truths], truths, fitted.classes_)
    assert metrics["n_images"] == len(test.samples)
    assert metrics["foreground_iou"] > all_fg["foreground_iou"] + 0.15
    assert metrics["foreground_iou"] > all_bg["foreground_iou"] + 0.15
    assert metrics["miou"] > max(all_fg["miou"], all_bg["miou"])
    scores = fitted.threshold_scores_  # the cut is the best validation one of the grid
    assert scores[fitted.threshold_] == max(scores.values()) and len(scores) >= 10
    assert fitted.keep_largest_ == (fitted.keep_largest_scores_["largest_component"]
                                    > fitted.keep_largest_scores_["as_is"])
    counts = fitted.parameter_count()
    assert counts["trained"] == counts["decoder"] < counts["total"]


def test_save_load_round_trip_predicts_the_same_masks(fitted, fixture_data, tmp_path):
    images = [s.image for s in fixture_data["test"].samples[:4]]
    fitted.save(tmp_path / "seg")
    manifest = json.loads((tmp_path / "seg" / "manifest.json").read_text())
    assert manifest["format"] == SegmentationModel.FORMAT
    assert manifest["backbone"]["name"] == "efficientnet_lite0"
    assert manifest["classes"] == ["background", "foreground"]
    assert manifest["unpool"] == "nearest" and manifest["threshold"] == fitted.threshold_
    assert manifest["image_size"] == 64
    assert manifest["keep_largest"] == fitted.keep_largest_
    loaded = transferkit.load(tmp_path / "seg")
    assert isinstance(loaded, SegmentationModel)
    for a, b in zip(fitted.predict(images), loaded.predict(images)):
        assert a.shape == (64, 64) and np.array_equal(a, b)


def test_keep_largest_leaves_one_blob_per_mask_and_is_saved(lite0, fixture_data, tmp_path):
    from scipy import ndimage

    model = SegmentationModel(lite0, keep_largest=True, **dict(SMALL, epochs=2)).fit(
        fixture_data["train"], fixture_data["val"])
    images = [s.image for s in fixture_data["test"].samples]
    masks = model.predict(images)
    assert model.keep_largest_ is True
    assert all(ndimage.label(m, structure=np.ones((3, 3)))[1] <= 1 for m in masks)
    loaded = SegmentationModel.load(model.save(tmp_path / "seg"))
    assert loaded.keep_largest_ is True
    assert all(np.array_equal(a, b) for a, b in zip(masks, loaded.predict(images)))
    plain = SegmentationModel.load(tmp_path / "seg")
    plain.keep_largest_ = False  # the same network without the prior may leave more blobs
    assert all((a <= b).all() for a, b in zip(masks, plain.predict(images)))


def test_interrupted_training_resumes_from_its_checkpoint(lite0, fixture_data, tmp_path):
    ckpt = tmp_path / "seg.ckpt"
    params = dict(SMALL, epochs=3, patience=3, checkpoint=ckpt)
    with pytest.raises(TrainingInterrupted):
        SegmentationModel(lite0, stop_after_epochs=2, **params).fit(
            fixture_data["train"], fixture_data["val"])
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2
    model = SegmentationModel(lite0, resume=True, **params).fit(fixture_data["train"],
                                                                fixture_data["val"])
    assert model.resumed_from_ == {"phase": 0, "epoch": 2}
    assert [h["epoch"] for h in model.history_] == [1, 2, 3]
    assert model.history_[:2] == state["history"]
    with pytest.raises(InvalidOptionError, match="another run"):
        SegmentationModel(lite0, resume=True, **dict(params, lr=1e-2)).fit(
            fixture_data["train"], fixture_data["val"])


def test_fine_tuning_top_blocks_trains_them_and_survives_save_load(lite0, fixture_data,
                                                                   tmp_path):
    model = SegmentationModel(lite0, unpool="transposed", fine_tune_blocks=1,
                              fine_tune_epochs=1, **dict(SMALL, epochs=1)).fit(
        fixture_data["train"], fixture_data["val"])
    assert [h["phase"] for h in model.history_] == ["frozen", "fine-tune"]
    assert model.parameter_count()["trained"] > model.parameter_count()["decoder"]
    images = [s.image for s in fixture_data["test"].samples[:3]]
    loaded = SegmentationModel.load(model.save(tmp_path / "ft"))
    for a, b in zip(model.predict_proba(images), loaded.predict_proba(images)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_bad_mask_is_skipped_and_reported(lite0, tmp_path):
    write_fixture(tmp_path / "data", n=8, size=64, seed=1)
    train = tmp_path / "data" / "train"
    Image.new("L", (40, 30)).save(train / "masks" / "00000.png")  # wrong size
    data = load_segmentation_folder(train, binary=True)
    (train / "images" / "00001.png").write_bytes(b"not a picture")  # breaks after listing
    model = SegmentationModel(lite0, **dict(SMALL, epochs=1)).fit(data)
    reasons = {p.name: r for p, r in model.failures_}
    assert "00000.png" in reasons and "40x30" in reasons["00000.png"]
    assert "00001.png" in reasons
    assert model.n_train_ + model.n_val_ == 6


# maxunpool goes through torch's dynamo exporter (the TorchScript one refuses it): ~50 s
ONNX_KINDS = [pytest.param(k, marks=pytest.mark.slow) if k == "maxunpool" else k
              for k in UNPOOL_KINDS]


@pytest.mark.parametrize("kind", ONNX_KINDS)
def test_onnx_export_matches_torch_where_the_kind_exports(lite0, fixture_data, kind,
                                                          tmp_path):
    import onnxruntime

    model = SegmentationModel(lite0, unpool=kind, **dict(SMALL, epochs=1)).fit(
        fixture_data["train"], fixture_data["val"])
    if kind in NOT_EXPORTABLE:
        with pytest.raises(InvalidOptionError, match="do not export"):
            model.export_onnx(tmp_path / "seg.onnx")
        return
    path = model.export_onnx(tmp_path / "seg.onnx")
    inputs = model.encoder_.normalize(torch.rand(2, 3, 64, 64))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0]
    np.testing.assert_allclose(got, model._logits(inputs).numpy(), atol=1e-3)


def test_cli_trains_predicts_and_evaluates(tmp_path):
    from typer.testing import CliRunner

    from transferkit.cli import app

    write_fixture(tmp_path / "data", n=12, size=64, seed=2)
    model = tmp_path / "seg"
    runner = CliRunner()
    result = runner.invoke(app, ["segment", "train", str(tmp_path / "data"), "-o", str(model),
                                 "--binary", "--image-size", "64", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "foreground IoU" in result.output and (model / "report" / "contact_sheet.png").exists()
    (tmp_path / "broken.png").write_bytes(b"nope")
    images = sorted((tmp_path / "data" / "test" / "images").iterdir())[:2]
    result = runner.invoke(app, ["segment", "predict", str(model), *map(str, images),
                                 str(tmp_path / "broken.png"), "-o", str(tmp_path / "pred")])
    assert result.exit_code == 0, result.output
    assert "broken.png" in result.output
    mask = np.asarray(Image.open(tmp_path / "pred" / f"{images[0].stem}.mask.png"))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
    assert (tmp_path / "pred" / f"{images[1].stem}.overlay.png").exists()
    result = runner.invoke(app, ["segment", "evaluate", str(model),
                                 str(tmp_path / "data" / "val")])
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output
    assert json.loads((model / "evaluation" / "metrics.json").read_text())["n_images"] > 0
    result = runner.invoke(app, ["segment", "train", str(tmp_path / "nowhere"), "-o",
                                 str(model)])
    assert result.exit_code == 2 and "nowhere" in result.output


def test_max_seconds_bounds_training_time(lite0, fixture_data):
    model = SegmentationModel(lite0, max_seconds=0.0, **dict(SMALL, epochs=50)).fit(
        fixture_data["train"], fixture_data["val"])
    assert len(model.history_) == 0  # the budget was spent before the first epoch
    assert model.threshold_ is not None  # still a usable model (the untrained decoder)
