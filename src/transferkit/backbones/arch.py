"""What training and inspection need to know about a timm architecture, and where it is.

* Block groups (the units fine-tuning unfreezes) come from timm's own ``group_matcher``, so
  every timm model has them; ``block_names`` falls back to top-level children otherwise.
* The trunk split (a frozen trunk's output cached, only the top blocks trained) needs the
  order of a family's forward pass: stem -> blocks -> tail -> ``forward_head``. Families are
  registered as :class:`Layout` s (EfficientNet, MobileNetV3, ResNet, ConvNeXt, ViT); a split is
  checked against ``forward_features`` once before use, and an unknown layout just trains
  without the cache (``split_trunk`` returns None).
* Feature taps (``feature_info``: module, channels, stride) for dense heads and atlases.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Layout:
    """Attribute names of one family's forward pass, in the order ``forward_features`` runs them.

    The blocks are either the children of one container (``block_container``, EfficientNet's
    ``blocks``) or named attributes (``block_attrs``, ResNet's ``layer1`` ... ``layer4``).
    ``excludes`` names attributes whose presence means the model belongs to another layout.
    """

    name: str
    stem: tuple[str, ...]
    tail: tuple[str, ...] = ()
    block_container: str | None = None
    block_attrs: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    model_classes: tuple[str, ...] = ()

    def matches(self, model: nn.Module) -> bool:
        """Attributes present (a stem step may be a method, e.g. ViT's ``_pos_embed``), and the
        model's class among ``model_classes`` when the layout names any."""
        blocks = (self.block_container,) if self.block_container else self.block_attrs
        needed = self.stem + self.tail + blocks
        return (callable(getattr(model, "forward_head", None))
                and all(callable(getattr(model, a, None)) for a in needed)
                and not any(hasattr(model, a) for a in self.excludes)
                and (not self.model_classes or type(model).__name__ in self.model_classes))

    def block_names(self, model: nn.Module) -> list[str]:
        if self.block_container is None:
            return list(self.block_attrs)
        container = getattr(model, self.block_container)
        return [f"{self.block_container}.{name}" for name, _ in container.named_children()]


EFFICIENTNET = Layout("efficientnet", stem=("conv_stem", "bn1"), tail=("conv_head", "bn2"),
                      block_container="blocks")
# MobileNetV3 runs conv_head inside forward_head, so nothing follows its blocks.
MOBILENETV3 = Layout("mobilenetv3", stem=("conv_stem", "bn1"), block_container="blocks",
                     excludes=("bn2",))
RESNET = Layout("resnet", stem=("conv1", "bn1", "act1", "maxpool"),
                block_attrs=("layer1", "layer2", "layer3", "layer4"))
CONVNEXT = Layout("convnext", stem=("stem",), tail=("norm_pre",), block_container="stages",
                  model_classes=("ConvNeXt",))
VIT = Layout("vit", stem=("patch_embed", "_pos_embed", "patch_drop", "norm_pre"),
             tail=("norm",), block_container="blocks", model_classes=("VisionTransformer",))

_LAYOUTS: list[Layout] = [EFFICIENTNET, MOBILENETV3, RESNET, CONVNEXT, VIT]


def register_layout(layout: Layout) -> Layout:
    """Teach fine-tuning another family; checked before the built-in layouts."""
    _LAYOUTS.insert(0, layout)
    return layout


def layout_of(model: nn.Module) -> Layout | None:
    """The registered layout ``model`` follows, or None."""
    return next((layout for layout in _LAYOUTS if layout.matches(model)), None)


def block_names(model: nn.Module) -> list[str]:
    """Coarse stages, shallow to deep: the units fine-tuning unfreezes.

    A registered layout names its blocks; any other timm model gets the groups of its
    ``group_matcher(coarse=True)`` between the stem group and the head group, each named by
    the module prefix its parameters share (``stages.2``, ``blocks.7``); without a matcher,
    the model's top-level children.
    """
    layout = layout_of(model)
    if layout is not None:
        return layout.block_names(model)
    groups = _parameter_groups(model)
    if len(groups) > 2:
        return [_common_prefix(names) for names in groups[1:-1]]
    return [name for name, _ in model.named_children()]


def _parameter_groups(model: nn.Module) -> list[list[str]]:
    matcher = getattr(model, "group_matcher", None)
    if matcher is None:
        return []
    from timm.models import group_parameters

    try:
        return [list(names) for names in group_parameters(model, matcher(coarse=True)).values()]
    except Exception:  # noqa: BLE001 - a matcher timm cannot apply: no groups
        return []


def _common_prefix(param_names: list[str]) -> str:
    parts = [name.split(".")[:-1] for name in param_names]
    shared = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        shared.append(level[0])
    return ".".join(shared) or param_names[0].rsplit(".", 1)[0]


def fixed_input_size(model: nn.Module) -> int | None:
    """The one input size a model accepts (ViT-style patch embeddings with a learnt position
    grid), or None when any size works (CNNs)."""
    patch = getattr(model, "patch_embed", None)
    size = getattr(patch, "img_size", None)
    if size is None or not getattr(patch, "strict_img_size", False) \
            or getattr(model, "dynamic_img_size", False):
        return None
    return int(size[0]) if isinstance(size, (tuple, list)) else int(size)


def resize_input(model: nn.Module, size: int) -> nn.Module:
    """``model`` itself when it takes ``size`` px already, else a copy whose position
    embedding timm resamples to the new grid (``set_input_size``)."""
    fixed = fixed_input_size(model)
    if fixed is None or fixed == size:
        return model
    if not callable(getattr(model, "set_input_size", None)):
        raise ValueError(f"{type(model).__name__} only takes {fixed} px inputs and cannot be "
                         f"resized to {size} px")
    resized = copy.deepcopy(model)
    resized.set_input_size(img_size=(size, size))
    return resized


def feature_taps(model: nn.Module) -> list[dict[str, Any]]:
    """timm's ``feature_info``: ``[{module, num_chs, reduction}]`` shallow to deep, the maps a
    dense head or a layer atlas reads; empty when the model does not describe them."""
    info = getattr(model, "feature_info", None)
    if not info:
        return []
    entries = info.info if hasattr(info, "info") else info
    return [{"module": e.get("module"), "num_chs": int(e.get("num_chs", 0)),
             "reduction": int(e.get("reduction", 0))} for e in entries]


def classifier_name(model: nn.Module) -> str:
    """Module name of the ImageNet classifier, which fine-tuning replaces and never trains."""
    get = getattr(model, "get_classifier", None)
    classifier = get() if get else None
    for name, module in model.named_modules():
        if module is classifier and name:
            return name
    return "classifier"


@dataclass(frozen=True)
class TrunkSplit:
    """A model cut before its last blocks: ``run_top(run_trunk(x))`` equals the embedding.

    With the trunk frozen and in inference mode its output never changes, so it can be
    computed once and training epochs only run the top.
    """

    model: nn.Module
    layout: Layout
    first_top_block: int

    def _blocks(self) -> list[nn.Module]:
        return [self.model.get_submodule(name) for name in self.layout.block_names(self.model)]

    def run_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and the blocks below the cut."""
        for name in self.layout.stem:
            x = getattr(self.model, name)(x)
        for block in self._blocks()[:self.first_top_block]:
            x = block(x)
        return x

    def run_top(self, x: torch.Tensor) -> torch.Tensor:
        """Blocks above the cut, the tail and pooling: the pooled embedding (N, features)."""
        for block in self._blocks()[self.first_top_block:]:
            x = block(x)
        for name in self.layout.tail:
            x = getattr(self.model, name)(x)
        return self.model.forward_head(x, pre_logits=True)


def split_trunk(model: nn.Module, n_top_blocks: int,
                example: torch.Tensor | None = None) -> TrunkSplit | None:
    """Cut ``model`` before its last ``n_top_blocks`` blocks; None for an unknown layout, when
    the cut would leave the trunk or the top empty, or when (given an ``example`` batch) the
    split does not reproduce the model's own embedding - a variant of a family that runs
    something extra in ``forward_features`` is then trained without the cache."""
    layout = layout_of(model)
    if layout is None:
        return None
    n_blocks = len(layout.block_names(model))
    if not 0 < n_top_blocks < n_blocks:
        return None
    split = TrunkSplit(model, layout, n_blocks - n_top_blocks)
    if example is not None and not _reproduces_embedding(split, example):
        return None
    return split


@torch.inference_mode()
def _reproduces_embedding(split: TrunkSplit, example: torch.Tensor) -> bool:
    model = split.model
    was_training = model.training
    model.eval()
    try:
        expected = model.forward_head(model.forward_features(example), pre_logits=True)
        got = split.run_top(split.run_trunk(example))
        return got.shape == expected.shape and torch.allclose(got, expected, atol=1e-4,
                                                              rtol=1e-4)
    except Exception:  # noqa: BLE001 - any failure of the split means: do not use it
        return False
    finally:
        model.train(was_training)
