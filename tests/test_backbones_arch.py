"""Layouts of timm families: cutting a model into trunk + top reproduces its embedding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferkit.backbones import block_names, create, split_trunk
from transferkit.train.finetune import trainable_body_parameters


@pytest.fixture(scope="module")
def resnet18():
    return create("resnet18", pretrained=False)


@pytest.fixture(scope="module")
def mobilenetv3():
    return create("mobilenetv3_small_050", pretrained=False)


@pytest.mark.parametrize("name", ["lite0", "resnet18", "mobilenetv3"])
@pytest.mark.parametrize("n_top_blocks", [1, 2])
def test_trunk_then_top_is_the_embedding(name, n_top_blocks, request):
    backbone = request.getfixturevalue(name).eval()
    split = split_trunk(backbone.model, n_top_blocks)
    assert split is not None
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(split.run_top(split.run_trunk(x)), backbone.embed(x),
                                   rtol=1e-5, atol=1e-5)


def test_block_names_are_the_stages(lite0, resnet18):
    assert block_names(lite0.model) == [f"blocks.{i}" for i in range(7)]
    assert resnet18.block_names() == ["layer1", "layer2", "layer3", "layer4"]
    last = trainable_body_parameters(resnet18, 1)
    assert last and all(n.startswith("layer4.") for n in last)  # fc is the classifier


def test_cuts_that_leave_nothing_to_cache_or_train_are_refused(resnet18):
    assert split_trunk(resnet18.model, 0) is None
    assert split_trunk(resnet18.model, 4) is None
    assert split_trunk(resnet18.model, -1) is None
    assert split_trunk(resnet18.model, 3).first_top_block == 1


def test_unknown_layout_is_not_split():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert split_trunk(model, 1) is None
    assert block_names(model) == ["0", "1"]
