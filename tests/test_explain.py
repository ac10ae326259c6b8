"""Feature visualisation, top-k images and adversarial attacks on real EfficientNet-Lite0."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from transferkit.backbones import imagenet_index
from transferkit.data import load_image, sample_photo
from transferkit.explain import (
    PixelModel,
    attack,
    classify_image,
    parse_eps,
    parse_target,
    top_activating,
    visualize,
)


def test_ideal_tabby_is_seen_as_tabby_after_png_round_trip(lite0, tmp_path):
    result = visualize(lite0, "class:tabby", steps=32, show_progress=False)
    path = tmp_path / "tabby.png"
    result.image.save(path)
    # standard 224 px preprocessing of the 8-bit file, independent of the optimiser
    top = classify_image(lite0, load_image(path), k=1)
    assert top[0][0].startswith("tabby"), top
    assert result.objective[-1] > result.objective[0] + 5


def test_channel_visualisation_increases_the_activation(lite0):
    result = visualize(lite0, "channel:blocks.3:5", steps=6, size=64, input_size=96,
                       show_progress=False)
    assert result.objective[-1] > result.objective[0]
    assert result.image.size == (lite0.preprocessing.resize_size,) * 2


def test_targets_parse_and_fail_clearly(lite0):
    assert parse_target("tabby").index == imagenet_index("tabby")
    assert parse_target("neuron:blocks.4:7").layer == "blocks.4"
    with pytest.raises(ValueError, match="expected"):
        parse_target("channel:blocks.4")
    with pytest.raises(ValueError, match="unknown layer"):
        visualize(lite0, "layer:blocks.99", steps=1, size=32, input_size=64)


def test_pgd_targeted_makes_coffee_a_tabby_and_survives_8_bit(lite0, tmp_path):
    result = attack(lite0, sample_photo("coffee"), target="tabby", method="pgd", eps="8/255",
                    steps=10, show_progress=False)
    assert result.original_top1[0] == "espresso"
    assert result.success and result.adversarial_top1[0].startswith("tabby")
    assert result.eps_used <= 8 / 255 + 1e-6
    result.save(tmp_path)
    # a fresh load of the PNG through the standard pipeline is still fooled
    assert classify_image(lite0, load_image(tmp_path / "adversarial.png"), 1)[0][0] \
        .startswith("tabby")
    orig = np.asarray(load_image(tmp_path / "original.png"), np.int16)
    adv = np.asarray(load_image(tmp_path / "adversarial.png"), np.int16)
    assert np.abs(adv - orig).max() <= 8
    assert "8.0/255" in (tmp_path / "summary.txt").read_text()
    assert (tmp_path / "perturbation.png").exists()


def test_untargeted_pgd_and_fgsm_budgets(lite0):
    coffee = sample_photo("coffee")
    pgd = attack(lite0, coffee, method="pgd", eps=4 / 255, steps=5, show_progress=False)
    assert pgd.success and pgd.adversarial_top1[0] != "espresso"
    fgsm = attack(lite0, coffee, method="fgsm", eps=0.02, show_progress=False)
    assert fgsm.eps_used <= 0.02 + 1 / 255 and fgsm.adversarial_top1[1] < fgsm.original_top1[1]
    none = attack(lite0, coffee, method="fgsm", eps=0.0, show_progress=False)
    assert none.eps_used == 0 and not none.success
    assert parse_eps("8/255") == pytest.approx(8 / 255) and parse_eps("8") == parse_eps(8 / 255)
    with pytest.raises(ValueError, match="method"):
        attack(lite0, coffee, method="cw")


def test_top_images_ranks_by_channel_activation(lite0, fashion_mini, tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(fashion_mini / "Bag", folder / "Bag")
    shutil.copytree(fashion_mini / "Trouser", folder / "Trouser")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    result = top_activating(lite0, folder, "blocks.5", 3, k=4, show_progress=False)
    assert len(result.images) == 4 and result.scores == sorted(result.scores, reverse=True)
    assert result.failures and "broken.jpg" in result.failures[0][0]
    # recompute the best and the worst image's score directly with a hook
    full = top_activating(lite0, folder, "blocks.5", 3, k=100, show_progress=False)
    assert len(full.scores) == 24
    model = PixelModel(lite0)
    transform = lite0.preprocessing.eval_transform()
    mean = torch.tensor(lite0.preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(lite0.preprocessing.std).view(3, 1, 1)
    with torch.no_grad(), model.capture("blocks.5") as store:
        for name, score in ((full.names[0], full.scores[0]), (full.names[-1], full.scores[-1])):
            model((transform(load_image(name)) * std + mean)[None])
            assert float(store["out"][0, 3].mean()) == pytest.approx(score, rel=1e-3, abs=1e-4)
    assert full.scores[0] > full.scores[-1]
    grid = result.save_grid(tmp_path / "grid.png")
    assert grid.stat().st_size > 0


def test_top_images_on_fashion_mnist_arrays(lite0):
    from transferkit.data import load_fashion_mnist

    X, _ = load_fashion_mnist("test", 64)
    result = top_activating(lite0, X, "blocks.2", 0, k=5, image_size=64, show_progress=False)
    assert len(result.indices) == 5 and result.names[0].startswith("#")


def test_cli_attack_visualize_top_images(tmp_path, fashion_mini):
    from transferkit.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["attack", "coffee", "--method", "fgsm", "--eps", "0.03", "-o",
                              str(tmp_path / "atk")])
    assert out.exit_code in (0, 1), out.output  # 1 = attack did not flip the label
    assert "original top-1:" in out.output and (tmp_path / "atk" / "adversarial.png").exists()
    out = runner.invoke(app, ["attack", str(tmp_path / "missing.jpg"), "-o", str(tmp_path)])
    assert out.exit_code == 2 and "missing.jpg" in out.output
    out = runner.invoke(app, ["visualize", "channel:blocks.2:1", "--steps", "2", "--size", "32",
                              "--input-size", "64", "-o", str(tmp_path / "v.png")])
    assert out.exit_code == 0 and (tmp_path / "v.txt").exists(), out.output
    out = runner.invoke(app, ["top-images", "blocks.4", "2", str(fashion_mini), "-k", "4", "-o",
                              str(tmp_path / "top.png")])
    assert out.exit_code == 0 and (tmp_path / "top.png").exists(), out.output


def test_explaining_leaves_the_shared_backbone_trainable(lite0):
    before = [p.requires_grad for p in lite0.parameters()]
    visualize(lite0, "class:tabby", steps=1, size=32, input_size=64, show_progress=False)
    attack(lite0, sample_photo("coffee"), method="fgsm", eps=0.01, show_progress=False)
    assert [p.requires_grad for p in lite0.parameters()] == before
    assert all(p.grad is None for p in lite0.parameters())
