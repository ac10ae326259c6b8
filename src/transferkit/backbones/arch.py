"""How timm model families are laid out: stem -> blocks -> tail -> ``forward_head``.

Fine-tuning unfreezes whole blocks and, with a frozen trunk, caches the output of the
blocks it does not train. Both need to know where a model keeps its stem, its blocks and
what runs between the last block and the pooling head - knowledge that differs per family
and so lives here, not in the training code. A model whose layout is not registered still
trains; it just is not split (``split_trunk`` returns None).
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def matches(self, model: nn.Module) -> bool:
        blocks = (self.block_container,) if self.block_container else self.block_attrs
        needed = self.stem + self.tail + blocks
        return (callable(getattr(model, "forward_head", None))
                and all(isinstance(getattr(model, a, None), nn.Module) for a in needed)
                and not any(hasattr(model, a) for a in self.excludes))

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

_LAYOUTS: list[Layout] = [EFFICIENTNET, MOBILENETV3, RESNET]


def register_layout(layout: Layout) -> Layout:
    """Teach fine-tuning another family; checked before the built-in layouts."""
    _LAYOUTS.insert(0, layout)
    return layout


def layout_of(model: nn.Module) -> Layout | None:
    """The registered layout ``model`` follows, or None."""
    return next((layout for layout in _LAYOUTS if layout.matches(model)), None)


def block_names(model: nn.Module) -> list[str]:
    """Coarse stages, shallow to deep: the units fine-tuning unfreezes.

    For an unregistered layout: the children of ``blocks`` when the model exposes feature
    stages there (ViT-like), else its top-level children.
    """
    layout = layout_of(model)
    if layout is not None:
        return layout.block_names(model)
    if getattr(model, "feature_info", None) is not None and hasattr(model, "blocks"):
        return [f"blocks.{i}" for i in range(len(model.blocks))]
    return [name for name, _ in model.named_children()]


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


def split_trunk(model: nn.Module, n_top_blocks: int) -> TrunkSplit | None:
    """Cut ``model`` before its last ``n_top_blocks`` blocks; None for an unknown layout or
    when the cut would leave the trunk or the top empty."""
    layout = layout_of(model)
    if layout is None:
        return None
    n_blocks = len(layout.block_names(model))
    if not 0 < n_top_blocks < n_blocks:
        return None
    return TrunkSplit(model, layout, n_blocks - n_top_blocks)
