"""Backbone registry: offline ImageNet weights, preprocessing, timm + local checkpoints."""

from __future__ import annotations

import pytest
import torch

from transferkit.backbones import (
    BACKBONES,
    Backbone,
    Preprocessing,
    create,
    imagenet_index,
    imagenet_labels,
    list_backbones,
)
from transferkit.data import load_image
from transferkit.errors import (
    IncompatibleModelError,
    InvalidOptionError,
    MissingWeightsError,
    UnknownNameError,
)
from transferkit.features import preprocess_images


def test_registry_lists_the_offline_lite_models():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(
        list_backbones())


@pytest.mark.parametrize("name,size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_larger_lite_variants_load_strictly_and_see_the_cat(name, size, photos_dir,
                                                             cat_classes):
    model = create(name)
    assert model.preprocessing.input_size == size
    assert model.preprocessing.mean == (0.5, 0.5, 0.5) == model.preprocessing.std
    batch = preprocess_images([load_image(photos_dir / "chelsea.jpg")], model)
    (top1, _), *_ = model.predict_topk(batch, k=5)[0]
    assert imagenet_labels()[top1] in cat_classes


def test_lite0_identity_and_preprocessing(lite0):
    spec = lite0.spec()
    assert spec["name"] == "efficientnet_lite0"
    assert spec["arch"] == "tf_efficientnet_lite0"
    assert spec["weights_id"].startswith("imagenet-")
    assert spec["num_features"] == 1280
    assert spec["preprocessing"]["input_size"] == 224
    assert Preprocessing.from_dict(spec["preprocessing"]) == lite0.preprocessing
    # 'same' padding variant with TF BatchNorm epsilon, as the weights require
    bn = lite0.model.bn1
    assert bn.eps == pytest.approx(1e-3)


def test_embed_is_pooled_penultimate_feature(lite0):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        emb = lite0.embed(x)
        logits = lite0(x)
    assert emb.shape == (2, 1280)
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(lite0.model.classifier(emb), logits, rtol=1e-4, atol=1e-4)


def test_layer_and_block_names(lite0):
    names = lite0.layer_names()
    assert "blocks.6.0.conv_pwl" in names and "conv_head" in names
    assert lite0.block_names() == [f"blocks.{i}" for i in range(7)]


def test_saved_backbone_directory_round_trips(lite0, tmp_path):
    lite0.save(tmp_path / "body")
    assert (tmp_path / "body" / "backbone.safetensors").exists()
    again = create(str(tmp_path / "body"))
    assert again.spec()["weights_id"] == lite0.spec()["weights_id"]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(again.embed(x), lite0.embed(x))


def test_any_timm_arch_with_a_local_checkpoint(tmp_path):
    from safetensors.torch import save_file

    source = create("resnet18", pretrained=False, num_classes=7)
    path = tmp_path / "my_resnet.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(path))
    loaded = create("resnet18", checkpoint=path, num_classes=7)
    assert loaded.spec()["weights_id"].startswith("file-")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x))
    # .pth state dicts (weights_only load, never arbitrary unpickling) work as well
    pth = tmp_path / "my_resnet.pth"
    torch.save({"state_dict": source.model.state_dict()}, pth)
    with torch.no_grad():
        torch.testing.assert_close(create("resnet18", checkpoint=pth, num_classes=7)(x), source(x))


def test_clear_errors_for_bad_backbone_requests(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown backbone 'no_such_net'"):
        create("no_such_net")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="not found in the Hugging Face cache"):
        create("resnet18")
    with pytest.raises(MissingWeightsError, match="timm publishes no pretrained weights"):
        create("cspresnet50w")
    garbage = tmp_path / "broken.pth"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ValueError, match="broken.pth"):
        create("resnet18", checkpoint=garbage)
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(2, 2)}, str(wrong))
    with pytest.raises(ValueError, match="do not fit"):
        create("resnet18", checkpoint=wrong)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        create("resnet18", checkpoint=tmp_path / "missing.safetensors")


def test_image_size_override_is_recorded():
    model = create("efficientnet_lite0", image_size=96)
    assert model.preprocessing.input_size == 96
    assert model.spec()["preprocessing"]["input_size"] == 96


def test_imagenet_class_lookup():
    assert imagenet_labels()[imagenet_index("tabby")] == "tabby, tabby cat"
    assert imagenet_index("967") == 967
    assert "espresso" in imagenet_labels()[imagenet_index("espresso")]
    with pytest.raises(ValueError):
        imagenet_index("no such class anywhere")


def test_registered_names_refuse_unknown_options():
    with pytest.raises(InvalidOptionError, match="does not take drop_rate; it accepts"):
        create("efficientnet_lite0", drop_rate=0.3)
    with pytest.raises(UnknownNameError, match="efficientnet_lite0"):
        BACKBONES.get("lite9")


def test_registered_name_with_a_checkpoint_builds_the_registered_architecture(lite0, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in lite0.model.state_dict().items()}, str(path))
    mine = create("efficientnet_lite0", checkpoint=path)  # timm's own efficientnet_lite0 differs
    assert mine.arch == "tf_efficientnet_lite0" and mine.name == "efficientnet_lite0"
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(mine.embed(x), lite0.embed(x))
    again = Backbone.from_spec(mine.spec())
    assert again.spec() == mine.spec()


def test_with_preprocessing_returns_a_copy_that_shares_the_weights(lite0):
    small = lite0.with_preprocessing(lite0.preprocessing.with_size(64, crop_pct=1.0))
    assert lite0.preprocessing.input_size == 224 and small.preprocessing.input_size == 64
    assert small.model is lite0.model
    assert lite0.with_image_size(None) is lite0
    assert lite0.with_image_size(96).spec()["preprocessing"]["input_size"] == 96


def test_from_spec_refuses_other_weights(lite0):
    spec = {**lite0.spec(), "weights_id": "imagenet-lukemelas-0000000000000000"}
    with pytest.raises(IncompatibleModelError, match="differs in: weights_id"):
        Backbone.from_spec(spec, where="my-model")
    spec = lite0.with_image_size(64).spec()
    assert Backbone.from_spec(spec).preprocessing.input_size == 64


def test_backbone_load_round_trips_and_names_a_wrong_folder(lite0, tmp_path):
    body = lite0.with_image_size(96)
    body.save(tmp_path / "body")
    again = Backbone.load(tmp_path / "body")
    assert again.spec()["preprocessing"] == body.spec()["preprocessing"]
    with pytest.raises(FileNotFoundError, match="not a saved backbone"):
        Backbone.load(tmp_path)
