"""A backbone that takes [0, 1] pixels: normalisation lives inside, so gradients and L-inf
budgets are expressed in the pixel space people see and save."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from transferkit.backbones import Backbone


def channels_first(activation: torch.Tensor) -> torch.Tensor:
    """A layer's output as (N, C, positions...): CNN maps are (N, C, H, W) already; a
    transformer block's tokens (N, L, C) become (N, C, L), so "channel c" means the same thing
    for both families."""
    if activation.ndim == 3:
        return activation.transpose(1, 2)
    return activation


def channel_means(activation: torch.Tensor) -> torch.Tensor:
    """(N, C): each channel's mean over its positions (pixels or tokens)."""
    maps = channels_first(activation)
    return maps.mean(dim=tuple(range(2, maps.ndim))) if maps.ndim > 2 else maps


def centre_value(maps: torch.Tensor) -> torch.Tensor:
    """(N,) value at the centre position of (N, H, W) maps or (N, L) token rows."""
    if maps.ndim == 3:
        return maps[:, maps.shape[1] // 2, maps.shape[2] // 2]
    return maps[:, maps.shape[1] // 2]


class StopForward(Exception):
    """Raised by a ``capture(..., stop=True)`` hook: the layers after it are not needed."""


class PixelModel(nn.Module):
    """``forward(x in [0,1], NCHW) -> logits`` with the backbone's mean/std folded in.

    The backbone is put in eval mode but its parameters are left as they are (a shared model
    may be fine-tuned elsewhere): callers take gradients with ``torch.autograd.grad`` w.r.t.
    the input only, which also skips the (slow on CPU) weight-gradient convolutions.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        prep = backbone.preprocessing
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1))
        self.backbone.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def module(self, layer: str) -> nn.Module:
        """The sub-module called ``layer`` (a name from ``Backbone.layer_names()``)."""
        modules = dict(self.backbone.model.named_modules())
        if layer not in modules or not layer:
            near = [n for n in modules if n and layer.split(".")[0] in n][:8]
            raise ValueError(f"unknown layer {layer!r} in {self.backbone.name}; e.g. "
                             f"{', '.join(near) or ', '.join(list(modules)[1:9])}")
        return modules[layer]

    @contextlib.contextmanager
    def capture(self, layer: str, stop: bool = False) -> Iterator[dict[str, torch.Tensor]]:
        """Record the output of ``layer`` during forward passes inside the ``with`` block;
        ``stop=True`` aborts each pass there with :class:`StopForward` (saves compute)."""
        store: dict[str, torch.Tensor] = {}

        def hook(_module, _inputs, output):
            store["out"] = output[0] if isinstance(output, tuple) else output
            if stop:
                raise StopForward

        handle = self.module(layer).register_forward_hook(hook)
        try:
            yield store
        finally:
            handle.remove()
