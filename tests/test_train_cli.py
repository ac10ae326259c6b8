"""`transferkit train`: one option per FinetuneConfig field, and the values reach the model."""

from __future__ import annotations

import dataclasses
import json

import typer
from typer.testing import CliRunner

from transferkit.cli import app
from transferkit.train import FinetuneConfig


def _train_params() -> dict:
    command = typer.main.get_command(app).commands["train"]
    return {param.name: param for param in command.params}


def test_every_finetune_config_field_is_a_train_option_with_its_default():
    params = _train_params()
    for field in dataclasses.fields(FinetuneConfig):
        option = params[field.name]
        flag = "--" + field.name.replace("_", "-")
        assert option.opts == [flag]
        assert option.default == field.default, field.name
        assert option.help == field.metadata["help"]
        if isinstance(field.default, bool):
            assert option.secondary_opts == [f"--no-{flag[2:]}"]


def test_the_options_train_had_keep_their_names():
    opts = {o for param in _train_params().values() for o in param.opts + param.secondary_opts}
    assert {"--epochs", "--head-epochs", "--lr", "--body-lr", "--unfreeze-blocks", "--augment",
            "--no-augment", "--patience", "--freeze-bn", "--no-freeze-bn", "--resume",
            "--stop-after-epochs", "--max-steps-per-epoch", "--text", "--head-param"} <= opts


def test_finetune_options_reach_the_saved_manifest(fashion_mini, tmp_path):
    out = tmp_path / "ft"
    result = CliRunner().invoke(app, [
        "train", str(fashion_mini), "--strategy", "finetune", "-o", str(out),
        "--image-size", "48", "--test-fraction", "0.25", "--batch-size", "16", "--epochs", "1",
        "--head-epochs", "5", "--max-steps-per-epoch", "2", "--weight-decay", "0.01",
        "--label-smoothing", "0", "--dropout", "0.1", "--no-hflip", "--keep-checkpoint"])
    assert result.exit_code == 0, result.output
    training = json.loads((out / "manifest.json").read_text())["training"]
    assert training["weight_decay"] == 0.01 and training["label_smoothing"] == 0.0
    assert training["dropout"] == 0.1 and training["hflip"] is False
    assert training["keep_checkpoint"] is True and (tmp_path / "ft.ckpt").is_dir()
    assert training["epochs"] == 1 and training["head_epochs"] == 5
