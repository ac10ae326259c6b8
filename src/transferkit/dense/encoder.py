"""A registry backbone as a dense encoder: its feature maps at strides 2..32, shallow to deep.

The maps are the backbone's ``feature_taps()`` (timm's ``feature_info``; for EfficientNet-Lite0
at 128 px: 16/24/40/112/320 channels at 64/32/16/8/4 px). A backbone whose family has a
registered :class:`~transferkit.backbones.Layout` (EfficientNet, MobileNetV3, ResNet, ConvNeXt)
is run unit by unit - each stem step and each block - so the top blocks can be fine-tuned while
everything below them is computed once and cached (:func:`encode_dataset`); any other model
runs timm's ``forward_intermediates`` and can only be frozen or trained whole.

Frozen units stay in inference mode (BatchNorm uses its ImageNet statistics) whatever
``train()`` is called with, so cached maps and live maps agree.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from transferkit.backbones import Backbone
from transferkit.backbones.arch import layout_of
from transferkit.errors import InvalidOptionError
from transferkit.utils import progress


class _Intermediates(nn.Module):
    """timm's ``forward_intermediates`` as one unit: every tap of a model without a layout."""

    def __init__(self, model: nn.Module, n_taps: int) -> None:
        super().__init__()
        self.model = model
        self.n_taps = n_taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model.forward_intermediates(x, indices=self.n_taps,
                                                     intermediates_only=True))


class DenseEncoder(nn.Module):
    """A registry backbone's feature maps at strides 2..32 (timm ``feature_info``), BN in
    inference mode when frozen.

    ``frozen=True`` trains nothing; ``train_blocks=k`` (with ``frozen=True``) trains the top
    ``k`` blocks of :meth:`Backbone.block_names` only, ``frozen=False`` trains all of it.
    ``channels`` and ``reductions`` describe the maps :meth:`forward` returns.
    """

    def __init__(self, backbone: Backbone, *, frozen: bool = True, train_blocks: int = 0) -> None:
        super().__init__()
        taps = backbone.feature_taps()
        if not taps:
            raise InvalidOptionError(f"backbone {backbone.name!r} describes no feature maps "
                                     f"(timm feature_info); it cannot be a dense encoder")
        self.backbone_name = backbone.name
        self.preprocessing = backbone.preprocessing
        self.channels: list[int] = [t["num_chs"] for t in taps]
        self.reductions: list[int] = [t["reduction"] for t in taps]
        self.frozen = frozen
        self.train_blocks = 0 if not frozen else int(train_blocks)
        units, names, tap_units = self._units(backbone, taps)
        self.units = nn.ModuleList(units)
        self.unit_names = names
        self.tap_units = tap_units  # index of the unit whose output is tap i
        self.first_trainable = self._first_trainable(backbone)
        for i in range(self.first_trainable, len(self.units)):
            # trained units get their own weights: the registry backbone (often shared, as by
            # a test session) must not change under the caller
            self.units[i] = copy.deepcopy(self.units[i]).requires_grad_(True)
        self.train(False)

    # -- building --------------------------------------------------------------------------
    @staticmethod
    def _units(backbone: Backbone, taps: list[dict]) -> tuple[list[nn.Module], list[str],
                                                               list[int]]:
        model = backbone.model
        layout = layout_of(model)
        tap_names = [t["module"] for t in taps]
        if layout is not None:
            names = [*layout.stem, *layout.block_names(model), *layout.tail]
            if all(name in names for name in tap_names):
                modules = [model.get_submodule(name) for name in names]
                if all(isinstance(m, nn.Module) for m in modules):
                    last = names.index(tap_names[-1])
                    return (modules[:last + 1], names[:last + 1],
                            [names.index(name) for name in tap_names])
        if not callable(getattr(model, "forward_intermediates", None)):
            raise InvalidOptionError(f"backbone {backbone.name!r} has neither a known layout "
                                     f"nor forward_intermediates; it cannot be a dense encoder")
        return [_Intermediates(model, len(taps))], ["forward_intermediates"], []

    def _first_trainable(self, backbone: Backbone) -> int:
        if not self.frozen:
            return 0
        if self.train_blocks <= 0:
            return len(self.units)
        if not self.tap_units:
            raise InvalidOptionError(f"backbone {backbone.name!r}: fine-tuning top blocks needs a "
                                     f"registered layout; use frozen=False to train it whole")
        blocks = [n for n in backbone.block_names() if n in self.unit_names]
        if self.train_blocks > len(blocks):
            raise InvalidOptionError(f"train_blocks={self.train_blocks}: backbone "
                                     f"{backbone.name!r} has {len(blocks)} blocks up to its "
                                     f"deepest feature map")
        return self.unit_names.index(blocks[-self.train_blocks])

    def train(self, mode: bool = True) -> DenseEncoder:
        """Frozen units stay in inference mode (BatchNorm statistics are never updated)."""
        super().train(mode)
        for i, unit in enumerate(self.units):
            unit.train(mode and i >= self.first_trainable)
        return self

    # -- running -----------------------------------------------------------------------------
    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) floats in [0, 1] -> the backbone's normalised input."""
        return self.preprocessing.normalize(batch)

    @property
    def cache_is_complete(self) -> bool:
        """True when nothing trains: the cached outputs are the feature maps themselves."""
        return self.first_trainable >= len(self.units)

    @torch.no_grad()
    def forward_frozen(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What never changes during training: the taps below the first trainable unit, then
        (when something trains) the input of that unit. Computed once by :func:`encode_dataset`."""
        if not self.tap_units:
            return self.units[0](x) if self.first_trainable else [x]
        maps = []
        for i, unit in enumerate(self.units[:self.first_trainable]):
            x = unit(x)
            if i in self.tap_units:
                maps.append(x)
        return maps if self.cache_is_complete else [*maps, x]

    def forward_cached(self, cached: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The feature maps from :meth:`forward_frozen`'s output (runs the trainable units)."""
        if self.cache_is_complete:
            return list(cached)
        x = cached[-1].float()  # the cache may hold float16
        if not self.tap_units:
            return self.units[0](x)
        maps = list(cached[:-1])
        for i in range(self.first_trainable, len(self.units)):
            x = self.units[i](x)
            if i in self.tap_units:
                maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised images (N, 3, H, W) -> one map per tap, shallow (stride 2) to deep."""
        return self.forward_cached(self.forward_frozen(x))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The weights of the units that train (own copies; the backbone is never changed)."""
        return [p for unit in self.units[self.first_trainable:] for p in unit.parameters()]

    def num_parameters(self, trainable_only: bool = False) -> int:
        params = self.trainable_parameters() if trainable_only else self.parameters()
        return sum(p.numel() for p in params)


@torch.no_grad()
def encode_dataset(encoder: DenseEncoder, images: torch.Tensor, batch_size: int = 32,
                   dtype: torch.dtype = torch.float16,
                   desc: str = "encoding") -> list[torch.Tensor]:
    """Run the frozen part of ``encoder`` once over normalised ``images`` (N, 3, H, W).

    Returns :meth:`DenseEncoder.forward_frozen`'s outputs stacked over the dataset, stored as
    ``dtype`` (float16 halves the memory; decoders cast back to float32). When nothing in the
    encoder trains these are exactly its feature maps, shallow to deep.
    """
    was_training = encoder.training
    encoder.eval()
    parts: list[list[torch.Tensor]] = []
    try:
        starts = range(0, len(images), batch_size)
        for start in progress(starts, desc=desc, total=len(starts), unit="batch"):
            outs = encoder.forward_frozen(images[start:start + batch_size].float())
            parts.append([o.to(dtype) for o in outs])
    finally:
        encoder.train(was_training)
    if not parts:
        return []
    return [torch.cat(level) for level in zip(*parts)]
