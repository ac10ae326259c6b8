"""U-Net decoder over a :class:`~transferkit.dense.DenseEncoder`'s maps, three un-poolings.

Each up block doubles the resolution of the deeper map, concatenates the encoder's skip map
at that resolution and mixes them with two 3x3 conv-BN-ReLU layers. The doubling is one of:

* ``nearest``    - copy each value into its 2x2 cell (``F.interpolate``, no weights);
* ``transposed`` - a learned 2x2 stride-2 transposed convolution;
* ``maxunpool``  - put each value back where a max came from (``F.max_unpool2d``),
  SegNet-style. EfficientNet-Lite (like most modern backbones) has no max-pool layer whose
  indices could be remembered, so the indices come from a 2x2 max-pool over the *skip
  feature at that resolution*; the deeper map is first projected (1x1 conv) to the skip's
  channel count so that every channel has its own indices.

The head is a 1x1 conv giving per-pixel logits at the shallowest map's resolution (stride 2
for Lite0); the last doubling to the input size is a bilinear resize of the logits for every
kind, since no encoder map exists at full resolution to concatenate or take indices from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.errors import InvalidOptionError

UNPOOL_KINDS = ("nearest", "transposed", "maxunpool")


def check_unpool(kind: str) -> str:
    if kind not in UNPOOL_KINDS:
        raise InvalidOptionError(f"unknown un-pooling {kind!r}; choose one of "
                                 f"{', '.join(UNPOOL_KINDS)}")
    return kind


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Unpool(nn.Module):
    """Bring ``x`` to the size of ``skip`` by one of :data:`UNPOOL_KINDS`."""

    def __init__(self, kind: str, c_in: int, c_skip: int) -> None:
        super().__init__()
        self.kind = check_unpool(kind)
        self.out_channels = c_skip if kind == "maxunpool" else c_in
        if kind == "transposed":
            self.up = nn.ConvTranspose2d(c_in, c_in, kernel_size=2, stride=2)
        elif kind == "maxunpool":
            self.project = nn.Conv2d(c_in, c_skip, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        size = skip.shape[-2:]
        if x.shape[-2:] == size:  # same stride (e.g. a ViT's taps): nothing to un-pool
            return self.project(x) if self.kind == "maxunpool" else x
        doubled = (x.shape[-2] * 2, x.shape[-1] * 2) == tuple(size)
        if self.kind == "transposed" and doubled:
            return self.up(x)
        if self.kind == "maxunpool" and doubled:
            _, indices = F.max_pool2d(skip, kernel_size=2, stride=2, return_indices=True)
            return F.max_unpool2d(self.project(x), indices, kernel_size=2, stride=2,
                                  output_size=size)
        if self.kind == "transposed":  # odd sizes: learned doubling, then fit
            return F.interpolate(self.up(x), size=size, mode="nearest")
        up = F.interpolate(x, size=size, mode="nearest")
        return self.project(up) if self.kind == "maxunpool" else up


class UpBlock(nn.Module):
    """Un-pool the deeper map, concatenate the skip map, two conv-BN-ReLU."""

    def __init__(self, kind: str, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.unpool = Unpool(kind, c_in, c_skip)
        self.mix = nn.Sequential(_conv_bn_relu(self.unpool.out_channels + c_skip, c_out),
                                 _conv_bn_relu(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([self.unpool(x, skip), skip], dim=1))


def default_decoder_channels(encoder_channels: Sequence[int]) -> list[int]:
    """Widths of the up blocks, deep to shallow: the skip's channels, kept within 16..64 (a
    CPU-sized decoder: Lite0 gives 64, 40, 24, 16)."""
    return [max(16, min(64, c)) for c in reversed(encoder_channels[:-1])]


class UNetDecoder(nn.Module):
    """Encoder maps (shallow to deep) -> per-pixel logits ``(N, n_outputs, H, W)``.

    ``n_outputs`` is 1 for a binary (foreground) model, K+1 for K classes plus background.
    The output has the size ``output_size`` given to :meth:`forward` (the input image's).
    """

    def __init__(self, encoder_channels: Sequence[int], n_outputs: int, unpool: str = "nearest",
                 decoder_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        self.unpool = check_unpool(unpool)
        widths = list(decoder_channels or default_decoder_channels(encoder_channels))
        skips = list(reversed(encoder_channels[:-1]))
        if len(widths) != len(skips):
            raise InvalidOptionError(f"decoder_channels needs {len(skips)} widths (one per "
                                     f"skip map), got {len(widths)}")
        self.decoder_channels = widths
        blocks, c_in = [], encoder_channels[-1]
        for c_skip, c_out in zip(skips, widths):
            blocks.append(UpBlock(unpool, c_in, c_skip, c_out))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c_in, n_outputs, kernel_size=1)

    def forward(self, maps: Sequence[torch.Tensor],
                output_size: tuple[int, int] | None = None) -> torch.Tensor:
        maps = [m.float() for m in maps]  # cached maps may be float16
        x = maps[-1]
        for block, skip in zip(self.blocks, reversed(maps[:-1])):
            x = block(x, skip)
        logits = self.head(x)
        if output_size is not None and tuple(logits.shape[-2:]) != tuple(output_size):
            logits = F.interpolate(logits, size=output_size, mode="bilinear",
                                   align_corners=False)
        return logits
