"""Any pretrained timm model through the Hugging Face cache, offline.

A real cache layout (models--timm--NAME/blobs, snapshots/REV -> blob symlinks, refs/main) is
written with random-init weights of three architectures (a ResNet, a ConvNeXt, a ViT); with
HF_HUB_OFFLINE=1 and HF_HOME pointing at it, the same code a user runs loads them: create,
classify, embed, train (logreg and finetune), ensembles across architectures, visualize,
attack and ONNX export. No mocks of timm or the hub.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_bytes
from typer.testing import CliRunner

from transferkit.backbones import Backbone, create
from transferkit.backbones.catalog import available_backbones
from transferkit.cli import app
from transferkit.errors import IncompatibleModelError, MissingWeightsError
from transferkit.train import TransferModel

ARCHS = {"resnet18": "resnet18.a1_in1k", "convnext_atto": "convnext_atto.d2_in1k",
         "vit_tiny_patch16_224": "vit_tiny_patch16_224.augreg_in21k_ft_in1k"}


def write_hf_cache(hub: Path, name: str, state: dict[str, torch.Tensor]) -> tuple[str, str]:
    """Lay out ``timm/<name>`` as huggingface_hub does: the file is a blob named by its
    SHA-256, the snapshot of a revision links to it, refs/main names the revision."""
    data = safetensors_bytes({k: v.contiguous() for k, v in state.items()})
    sha = hashlib.sha256(data).hexdigest()
    revision = hashlib.sha1(name.encode()).hexdigest()
    repo = hub / f"models--timm--{name}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / sha).write_bytes(data)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(Path("..", "..", "blobs", sha))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return revision, sha


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> dict[str, tuple[str, str]]:
    import timm

    home = tmp_path_factory.mktemp("hf-home")
    written = {}
    for tag in ARCHS.values():
        torch.manual_seed(0)
        written[tag] = write_hf_cache(home / "hub", tag, timm.create_model(tag).state_dict())
    return {"home": home, "written": written}


@pytest.fixture()
def offline(hf_home, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(hf_home["home"]))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hf_home


@pytest.mark.parametrize("arch", list(ARCHS))
def test_create_reads_the_cache_and_records_the_weights(offline, arch):
    tag = ARCHS[arch]
    revision, sha = offline["written"][tag]
    backbone = create(arch)  # the default tag, as timm resolves it
    assert backbone.name == tag
    spec = backbone.spec()
    assert spec["weights"] == {"name": tag, "repo": f"timm/{tag}", "revision": revision,
                               "filename": "model.safetensors", "sha256": sha}
    assert spec["weights_id"] == f"hf-{sha[:16]}" and spec["source"].startswith("hf:timm/")
    import timm

    torch.manual_seed(0)
    reference = timm.create_model(tag).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), reference(x))
    again = Backbone.from_spec(spec)
    assert again.spec() == spec


def test_missing_and_corrupt_cache_entries_give_one_clear_error(offline, tmp_path,
                                                                  monkeypatch):
    with pytest.raises(MissingWeightsError, match=r"resnet34\.a1_in1k: weights not found in "
                                                  r"the Hugging Face cache.*huggingface-cli "
                                                  r"download timm/resnet34\.a1_in1k.*checkpoint"):
        create("resnet34")
    tag = ARCHS["resnet18"]
    _, sha = offline["written"][tag]
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    state = {k: v for k, v in create(tag, pretrained=False).model.state_dict().items()}
    write_hf_cache(tmp_path / "hub", tag, state)
    blob = next((tmp_path / "hub" / f"models--timm--{tag}" / "blobs").iterdir())
    blob.write_bytes(blob.read_bytes()[:1000])  # a download cut short
    with pytest.raises(ValueError, match="cached weights are corrupt.*delete"):
        create(tag)


def test_other_weights_under_the_same_name_are_refused(offline, tmp_path, monkeypatch):
    spec = create("resnet18").spec()
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    torch.manual_seed(1)  # different random weights, same repo name, same revision hash
    write_hf_cache(tmp_path / "hub", ARCHS["resnet18"], create(
        "resnet18", pretrained=False).model.state_dict())
    with pytest.raises(IncompatibleModelError, match="weights_id"):
        Backbone.from_spec(spec, where="saved-model")


def test_backbones_lists_what_is_ready_offline(offline):
    rows = {row["name"]: row for row in available_backbones()}
    assert set(ARCHS.values()) <= set(rows) and "efficientnet_lite0" in rows
    assert rows["resnet18.a1_in1k"]["ready"] == "Hugging Face cache"
    assert rows["resnet18.a1_in1k"]["params_m"] == 11.7
    result = CliRunner().invoke(app, ["backbones", "--all", "--filter", "convnext_atto*"])
    assert result.exit_code == 0 and "convnext_atto.d2_in1k" in result.output
    assert "cached" in result.output.splitlines()[0]


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_command_runs_on_each_architecture(offline, arch, tmp_path, photos_dir,
                                                 fashion_mini):
    out = tmp_path / arch
    assert "chelsea" in _cli("classify", photos_dir / "chelsea.jpg", "-b", arch, "-k", "2")
    _cli("embed", photos_dir, "-o", out / "photos.parquet", "-b", arch, "--engine", "torch")
    _cli("train", fashion_mini, "-b", arch, "--image-size", 64, "-o", out / "probe")
    _cli("train", fashion_mini, "-b", arch, "--image-size", 64, "-s", "finetune", "--epochs",
         1, "--head-epochs", 3, "--max-steps-per-epoch", 2, "--unfreeze-blocks", 1,
         "--no-augment", "-o", out / "tuned")
    _cli("train", fashion_mini, "-b", arch, "--image-size", 32, "-s", "scratch", "--epochs",
         1, "--max-steps-per-epoch", 1, "-o", out / "scratch")
    assert TransferModel.load(out / "scratch").spec_["weights_id"].startswith("scratch-")
    tuned = TransferModel.load(out / "tuned")
    assert tuned.manifest["training"]["epochs_run"] == 1
    assert tuned.backbones[0].preprocessing.input_size == 64
    layer = create(arch, pretrained=False).block_names()[-1]
    for target in ("tabby", f"channel:{layer}:3"):
        _cli("visualize", target, "-b", arch, "--steps", 2, "--size", 32,
             "-o", out / f"vis-{target.split(':')[0]}.png")
    assert (out / "vis-channel.png").stat().st_size > 0
    _cli("attack", "coffee", "-b", arch, "--method", "fgsm", "-o", out / "attack")
    assert "match PyTorch" in _cli("export", out / "tuned", "-o", out / "tuned.onnx")


@pytest.mark.slow
def test_ensembles_mix_architectures_and_fine_tuned_bodies(offline, tmp_path, fashion_mini):
    members = []
    for arch, strategy in (("resnet18", "logreg"), ("vit_tiny_patch16_224", "finetune")):
        extra = ["--epochs", 1, "--head-epochs", 3, "--max-steps-per-epoch", 2] \
            if strategy == "finetune" else []
        _cli("train", fashion_mini, "-b", arch, "--image-size", 64, "-s", strategy, *extra,
             "-o", tmp_path / arch)
        members.append(tmp_path / arch)
    output = _cli("ensemble", *members, "-o", tmp_path / "both", "--data", fashion_mini)
    assert "ensemble" in output
    both = TransferModel.load(tmp_path / "both")
    assert [b.name for b in both.backbones] == ["resnet18.a1_in1k",
                                                "vit_tiny_patch16_224.augreg_in21k_ft_in1k"]
    proba, kept, _ = both.predict_proba_paths(sorted(fashion_mini.glob("*/*.png"))[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    manifest = json.loads((tmp_path / "both" / "manifest.json").read_text())
    assert [e["stored"] is not None for e in manifest["backbones"]] == [False, True]


def test_the_installed_command_finds_the_cache_too(offline, tmp_path, photos_dir):
    env = {**__import__("os").environ, "TRANSFERKIT_QUIET": "1"}
    result = subprocess.run([sys.executable, "-m", "transferkit", "classify", "-b",
                             "convnext_atto", str(photos_dir / "coffee.jpg"), "--json"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["path"].endswith("coffee.jpg")
    missing = subprocess.run([sys.executable, "-m", "transferkit", "embed", str(photos_dir),
                              "-o", str(tmp_path / "x.parquet"), "-b", "resnet50"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("error: resnet50.")
    assert "huggingface-cli download" in missing.stderr
