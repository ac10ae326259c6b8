"""Ensembles of saved models: a fine-tuned and a frozen-feature model averaged into one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from transferkit.cli import app
from transferkit.train import ensemble_models, fit, load_model

TINY = dict(image_size=48, test_fraction=0.25, batch_size=16, head_epochs=20,
            max_steps_per_epoch=2)


@pytest.fixture(scope="module")
def members(fashion_mini, tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    fit(fashion_mini, strategy="logreg", image_size=48, output=root / "probe", cache=False,
        num_workers=0)
    fit(fashion_mini, strategy="finetune", output=root / "tuned", epochs=1, **TINY)
    return root / "probe", root / "tuned"


def test_ensemble_averages_member_probabilities_and_round_trips(members, fashion_mini,
                                                                tmp_path):
    probe, tuned = (load_model(m) for m in members)
    files = sorted(fashion_mini.glob("*/*.png"))[::7]
    joined = ensemble_models([probe, tuned])
    assert joined.combine == "average" and len(joined.heads) == 2
    expected = (probe.predict_proba_paths(files)[0] + tuned.predict_proba_paths(files)[0]) / 2
    got, kept, failures = joined.predict_proba_paths(files)
    assert kept == [str(f) for f in files] and not failures
    np.testing.assert_allclose(got, expected, atol=1e-6)

    joined.save(tmp_path / "ens")
    manifest = json.loads((tmp_path / "ens" / "manifest.json").read_text())
    assert manifest["strategy"] == "ensemble"
    # the fine-tuned body travels with the ensemble; the frozen one is a reference
    assert [b["stored"] for b in manifest["backbones"]] == [None, "backbone_1"]
    assert [m["strategy"] for m in manifest["members"]] == ["logreg", "finetune"]
    reloaded = load_model(tmp_path / "ens")
    np.testing.assert_allclose(reloaded.predict_proba_paths(files)[0], expected, atol=1e-5)


def test_members_must_agree_on_classes(members, fashion_mini, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(fashion_mini, partial)
    shutil.rmtree(partial / "Bag")
    other = fit(partial, strategy="logreg", image_size=48, cache=False, num_workers=0)
    with pytest.raises(ValueError, match="classes .* differ"):
        ensemble_models([load_model(members[0]), other])
    with pytest.raises(ValueError, match="at least 2 models"):
        ensemble_models([load_model(members[0])])


def test_ensemble_cli_evaluates_members_side_by_side(members, fashion_mini, tmp_path):
    out = tmp_path / "ens"
    result = CliRunner().invoke(app, ["ensemble", *map(str, members), "-o", str(out),
                                      "--data", str(fashion_mini)])
    assert result.exit_code == 0, result.stdout
    lines = [line for line in result.stdout.splitlines() if "accuracy" in line]
    assert len(lines) == 3 and lines[-1].startswith("ensemble")
    assert (out / "report" / "confusion_matrix.png").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert 0 <= manifest["metrics"]["accuracy"] <= 1
    result = CliRunner().invoke(app, ["predict", str(out), str(fashion_mini / "Bag"), "-k", "1",
                                      "--json"])
    assert result.exit_code == 0, result.stdout
    labels = [r["top_k"][0]["label"] for r in json.loads(result.stdout)["results"]]
    assert len(labels) == 12 and labels.count("Bag") >= 6  # chance would be ~1 of 12


def test_evaluate_members_matches_each_member_on_its_own(members, fashion_mini):
    probe, tuned = (load_model(m) for m in members)
    member_metrics, joined_metrics = ensemble_models([probe, tuned]).evaluate_members(
        fashion_mini)
    for model, scores in zip((probe, tuned), member_metrics):
        alone = model.evaluate(fashion_mini)
        assert scores["accuracy"] == pytest.approx(alone["accuracy"])
        assert scores["confusion_matrix"] == alone["confusion_matrix"]
    assert joined_metrics["n"] == 120
    with pytest.raises(ValueError, match="not an ensemble"):
        probe.evaluate_members(fashion_mini)
