"""The advisor: measured numbers on real images, and the documented decision rule."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from transferkit.train import advise
from transferkit.train.advisor import BIG_PER_CLASS, decide


@pytest.mark.parametrize("median, minimum, skill, conf, expected", [
    (40, 40, 0.8, 0.5, "head"),                      # small & ImageNet-like
    (2000, 1500, 0.8, 0.5, "finetune"),              # big & like
    (2000, 1500, 0.1, 0.05, "scratch"),              # big & unlike
    (40, 40, 0.1, 0.05, "collect-more-data"),        # small & unlike
    (40, 40, 0.45, 0.5, "head"),                     # weak probe rescued by confidence
    (40, 40, 0.45, 0.1, "collect-more-data"),        # ... but not without it
    (2000, 5, 0.9, 0.9, "collect-more-data"),        # one class nearly empty
])
def test_decision_rule(median, minimum, skill, conf, expected):
    assert decide(median, minimum, skill, conf)[0] == expected


def test_advise_on_fashion_mini(fashion_mini):
    result = advise(fashion_mini, image_size=64, folds=4)
    assert result["n_images"] == 120 and result["n_classes"] == 10
    assert set(result["class_counts"].values()) == {12}
    assert result["big"] is False and 12 < BIG_PER_CLASS
    probe = result["linear_probe"]
    assert probe["folds"] == 4 and probe["accuracy"] > 0.3  # chance 0.1
    conf = result["imagenet_confidence"]
    assert 0 < conf["mean_max_probability"] <= 1 and 0 <= conf["mean_normalised_entropy"] <= 1
    expected = decide(12, 12, result["probe_skill"], conf["mean_max_probability"])[0]
    assert result["recommendation"] == expected in {"head", "collect-more-data"}
    assert any("linear probe" in r for r in result["reasons"])


def test_advise_cli_json(fashion_mini):
    from transferkit.cli import app

    result = CliRunner().invoke(app, ["advise", str(fashion_mini), "--image-size", "64",
                                      "--folds", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["recommendation"] in {"head", "finetune", "scratch", "collect-more-data"}
    assert payload["thresholds"]["big_per_class"] == BIG_PER_CLASS
    text = CliRunner().invoke(app, ["advise", str(fashion_mini), "--image-size", "64",
                                    "--folds", "3"])
    assert "recommendation:" in text.output and "skill" in text.output
