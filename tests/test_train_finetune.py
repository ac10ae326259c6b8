"""Fine-tuning through the body: tiny real runs, interruption and resume, BN policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from transferkit.train import TrainingInterrupted, fit, load_model
from transferkit.train.finetune import FinetuneNet, _set_train_mode, trainable_body_parameters

TINY = dict(image_size=48, test_fraction=0.25, batch_size=16, head_epochs=20,
            max_steps_per_epoch=2)


def test_unfreezing_picks_the_last_blocks_and_the_layers_after_them(lite0):
    names = trainable_body_parameters(lite0, 1)
    assert names and all(n.startswith(("blocks.6.", "conv_head.", "bn2.")) for n in names)
    assert any(n.startswith("conv_head.") for n in names)
    assert not any(n.startswith("classifier.") for n in names)
    two = trainable_body_parameters(lite0, 2)
    assert any(n.startswith("blocks.5.") for n in two) and set(names) < set(two)
    assert trainable_body_parameters(lite0, 0) == []
    every = trainable_body_parameters(lite0, -1)
    assert any(n.startswith("conv_stem.") for n in every)


def test_batchnorm_policy(lite0):
    import copy

    net = FinetuneNet(copy.deepcopy(lite0), 3, 0.1)
    trainable = {f"{n}" for n in trainable_body_parameters(net.backbone, 1)}
    bns = {n: m for n, m in net.backbone.model.named_modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    _set_train_mode(net, trainable, freeze_bn=True)
    assert not any(m.training for m in bns.values())
    assert net.head.training and net.dropout.training
    _set_train_mode(net, trainable, freeze_bn=False)
    assert bns["bn2"].training and bns["blocks.6.0.bn1"].training
    assert not bns["bn1"].training and not bns["blocks.2.0.bn1"].training


def test_finetune_interrupt_then_resume(fashion_mini, tmp_path):
    out = tmp_path / "ft"
    with pytest.raises(TrainingInterrupted) as info:
        fit(fashion_mini, strategy="finetune", output=out, epochs=2, stop_after_epochs=1,
            **TINY)
    ckpt = info.value.checkpoint
    assert ckpt == tmp_path / "ft.ckpt" and not out.exists()
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "best.safetensors",
                                                "optimizer.safetensors", "state.json"}
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 1 and state["phase1_done"]
    first_body_epoch = [r for r in state["history"] if r["phase"] == "body"]
    assert len(first_body_epoch) == 1
    assert {g["name"]: g["base_lr"] for g in state["param_groups"]} == {"head": 3e-4,
                                                                        "body": 1e-4}

    model = fit(fashion_mini, strategy="finetune", output=out, epochs=2, resume=True, **TINY)
    body = [r for r in model.history_ if r["phase"] == "body"]
    assert len(body) == 2 and body[0] == first_body_epoch[0]  # continued, not restarted
    assert not ckpt.exists()  # removed once the model is saved
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["epochs_run"] == 2
    assert manifest["backbones"][0]["stored"] == "backbone_0"
    assert manifest["backbone"]["weights_id"].startswith("finetune-")
    # the phase-1 probe is the floor: chance is 10% on these 30 held-out images
    assert manifest["metrics"]["test_accuracy"] >= 0.25
    with Image.open(out / "report" / "learning_curve.png") as img:
        img.verify()
    # the web app's mistakes view reads every evaluated image with its probabilities
    predictions = json.loads((out / "report" / "predictions.json").read_text())
    assert predictions["split"] == "test" and len(predictions["paths"]) == 30
    assert all(Path(p).exists() for p in predictions["paths"])
    right = [max(range(10), key=row.__getitem__) == predictions["classes"].index(true)
             for row, true in zip(predictions["probabilities"], predictions["true"])]
    assert abs(sum(right) / 30 - manifest["metrics"]["test_accuracy"]) < 1e-9

    loaded = load_model(out)
    images = [Image.open(p) for p in sorted(fashion_mini.glob("*/*.png"))[::15]]
    np.testing.assert_allclose(loaded.predict_proba_images(images),
                               model.predict_proba_images(images), rtol=1e-4, atol=1e-5)


def test_cached_trunk_finetune_changes_only_the_top(fashion_mini, lite0):
    model = fit(fashion_mini, backbone=lite0, strategy="finetune", epochs=1, augment=False,
                unfreeze_blocks=1, **TINY)
    tuned = model.backbones[0].model.state_dict()
    original = lite0.model.state_dict()
    assert torch.equal(tuned["blocks.5.0.conv_pw.weight"], original["blocks.5.0.conv_pw.weight"])
    assert torch.equal(tuned["bn2.running_mean"], original["bn2.running_mean"])  # BN frozen
    assert lite0.preprocessing.input_size == 224  # the caller's backbone is left alone
    if model.manifest["training"]["best_epoch"] == 1:  # kept only if it beat the probe
        assert not torch.equal(tuned["conv_head.weight"], original["conv_head.weight"])


def test_scratch_via_cli(fashion_mini, tmp_path):
    from transferkit.cli import app

    out = tmp_path / "scratch"
    result = CliRunner().invoke(app, ["train", str(fashion_mini), "--strategy", "scratch",
                                      "--image-size", "32", "--epochs", "1",
                                      "--max-steps-per-epoch", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["strategy"] == "scratch"
    assert manifest["backbone"]["weights_id"].startswith("scratch-")
    assert manifest["training"]["bn_policy"].startswith("all BN layers train")


def test_cached_trunk_finetune_trains_a_resnet(fashion_mini):
    from transferkit.backbones import create

    body = create("resnet18", pretrained=False)
    model = fit(fashion_mini, backbone=body, strategy="finetune", epochs=1, augment=False,
                unfreeze_blocks=1, **{**TINY, "head_epochs": 0})
    assert model.manifest["training"]["best_epoch"] == 1  # no probe to beat: the epoch is kept
    assert model.history_[-1]["phase"] == "body" and model.history_[-1]["train_loss"] > 0
    tuned, original = model.backbones[0].model.state_dict(), body.model.state_dict()
    assert not torch.equal(tuned["layer4.1.conv2.weight"], original["layer4.1.conv2.weight"])
    assert torch.equal(tuned["layer3.1.conv2.weight"], original["layer3.1.conv2.weight"])
    assert torch.equal(tuned["layer4.1.bn2.running_mean"], original["layer4.1.bn2.running_mean"])
