"""Convolutional autoencoder: max-pooling encoder, decoder with a choice of un-pooling.

The three un-pooling kinds answer "how does the decoder get resolution back?":

* ``nearest``    - copy each value into its 2x2 block (no learned parameters, no side info);
* ``maxunpool``  - put each value back where the encoder's max came from (SegNet-style). The
                   decoder then needs the pooling *indices* ("switches") from the encoder: they
                   are side information outside the bottleneck, which is why it reconstructs
                   sharper at the same code size. Decoding a bare code (interpolation,
                   ``inverse_transform``) falls back to the switches of the mean training image;
* ``transposed`` - a learned stride-2 transposed convolution.

``denoise_std > 0`` trains a denoising autoencoder: Gaussian noise on the input, clean target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.autoencoders._base import AutoencoderMixin, as_unit_images
from transferkit.errors import check_is_fitted
from transferkit.utils import progress

UNPOOL_KINDS = ("nearest", "maxunpool", "transposed")


class _Unpool(nn.Module):
    def __init__(self, kind: str, channels: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "transposed":
            self.up = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
        elif kind == "maxunpool":
            self.up = nn.MaxUnpool2d(2)
        else:
            self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "maxunpool":
            return self.up(x, indices)
        return self.up(x)


class ConvAENet(nn.Module):
    """conv-pool-conv-pool-linear | linear-unpool-conv-unpool-conv-sigmoid."""

    def __init__(self, image_size: int, bottleneck: int, channels: tuple[int, int],
                 unpool: str) -> None:
        super().__init__()
        c1, c2 = channels
        self.c2, self.side = c2, image_size // 4
        # batch norm after each conv: a few hundred CPU steps are enough to train
        self.conv1 = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1))
        self.conv2 = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2))
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.enc_fc = nn.Linear(c2 * self.side ** 2, bottleneck)
        self.dec_fc = nn.Linear(bottleneck, c2 * self.side ** 2)
        self.unpool2 = _Unpool(unpool, c2)
        self.dec_conv2 = nn.Sequential(nn.Conv2d(c2, c1, 3, padding=1), nn.BatchNorm2d(c1))
        self.unpool1 = _Unpool(unpool, c1)
        self.dec_conv1 = nn.Conv2d(c1, 1, 3, padding=1)
        self.act = nn.ReLU()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, idx1 = self.pool(self.act(self.conv1(x)))
        h, idx2 = self.pool(self.act(self.conv2(h)))
        return self.enc_fc(h.flatten(1)), (idx1, idx2)

    def decode(self, z: torch.Tensor,
               switches: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        idx1, idx2 = switches if switches is not None else (None, None)
        h = self.act(self.dec_fc(z)).view(len(z), self.c2, self.side, self.side)
        h = self.act(self.dec_conv2(self.act(self.unpool2(h, idx2))))
        return torch.sigmoid(self.dec_conv1(self.act(self.unpool1(h, idx1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, switches = self.encode(x)
        return self.decode(z, switches)


class ConvAutoencoder(AutoencoderMixin):
    """Trainable convolutional autoencoder with a scikit-learn interface.

    ``fit(X)`` on uint8 images (N,H,W) with H, W divisible by 4; ``transform`` gives the
    ``bottleneck``-dimensional codes (use them as features), ``inverse_transform`` decodes.
    """

    kind = "conv"

    def __init__(self, bottleneck: int = 32, unpool: str = "nearest", denoise_std: float = 0.0,
                 channels: tuple[int, int] = (16, 32), epochs: int = 5, batch_size: int = 64,
                 lr: float = 2e-3, seed: int = 0, verbose: bool = True) -> None:
        self.bottleneck = bottleneck
        self.unpool = unpool
        self.denoise_std = denoise_std
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.verbose = verbose

    # -- training -------------------------------------------------------------------------
    def _build(self, side: int) -> ConvAENet:
        if self.unpool not in UNPOOL_KINDS:
            raise ValueError(f"unpool must be one of {UNPOOL_KINDS}, got {self.unpool!r}")
        if side % 4:
            raise ValueError(f"image side must be divisible by 4, got {side}")
        return ConvAENet(side, int(self.bottleneck), tuple(self.channels), self.unpool)

    def fit(self, X: Any, y: Any = None) -> ConvAutoencoder:
        images = as_unit_images(X)
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"X: square images expected, got {images.shape[1:]}")
        if self.denoise_std < 0:
            raise ValueError(f"denoise_std must be >= 0, got {self.denoise_std}")
        gen = torch.Generator().manual_seed(self.seed)
        self.image_shape_ = images.shape[1:]
        with torch.random.fork_rng():  # seeded init without touching the global RNG
            torch.manual_seed(self.seed)
            self.net_ = self._build(images.shape[1])
        data = torch.from_numpy(images).unsqueeze(1)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=max(1, self.epochs)
            * -(-len(data) // self.batch_size), pct_start=0.15)
        self.history_ = []
        self.net_.train()
        epochs = range(self.epochs)
        for epoch in (progress(epochs, desc=f"train AE ({self.unpool})", unit="epoch")
                      if self.verbose else epochs):
            order = torch.randperm(len(data), generator=gen)
            total = 0.0
            for start in range(0, len(data), self.batch_size):
                clean = data[order[start:start + self.batch_size]]
                noisy = self.corrupt(clean, gen) if self.denoise_std > 0 else clean
                loss = nn.functional.mse_loss(self.net_(noisy), clean)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(clean)
            self.history_.append({"epoch": epoch + 1, "train_mse": total / len(data)})
        self.net_.eval()
        with torch.no_grad():
            mean_image = data.mean(0, keepdim=True)
            self.default_switches_ = self.net_.encode(mean_image)[1]
        return self

    def corrupt(self, clean: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Additive Gaussian noise of ``denoise_std``, clipped to [0, 1]."""
        noise = torch.randn(clean.shape, generator=gen) * self.denoise_std
        return (clean + noise).clamp(0.0, 1.0)

    # -- coding -----------------------------------------------------------------------------
    @property
    def code_size(self) -> int:
        return int(self.bottleneck)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "net_")

    def _tensor(self, X: Any) -> torch.Tensor:
        images = as_unit_images(X)
        if tuple(images.shape[1:]) != tuple(self.image_shape_):
            raise ValueError(f"X: images of shape {images.shape[1:]}, model was trained on "
                             f"{tuple(self.image_shape_)}")
        return torch.from_numpy(images).unsqueeze(1)

    @torch.inference_mode()
    def encode(self, X: Any, batch_size: int = 512
               ) -> tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor]]:
        """Codes plus the pooling switches (indices) the max-unpooling decoder needs."""
        self._check_fitted()
        data = self._tensor(X)
        codes, idx1, idx2 = [], [], []
        for start in range(0, len(data), batch_size):
            z, (i1, i2) = self.net_.encode(data[start:start + batch_size])
            codes.append(z)
            idx1.append(i1)
            idx2.append(i2)
        if not codes:
            return np.zeros((0, self.code_size), np.float32), (None, None)
        return torch.cat(codes).numpy(), (torch.cat(idx1), torch.cat(idx2))

    def transform(self, X: Any) -> np.ndarray:
        return self.encode(X)[0]

    @torch.inference_mode()
    def inverse_transform(self, codes: np.ndarray,
                          switches: tuple[torch.Tensor, torch.Tensor] | None = None,
                          batch_size: int = 512) -> np.ndarray:
        """Decode codes to float32 images (N,H,W). ``switches`` only matter for maxunpool;
        without them the mean training image's switches are used."""
        self._check_fitted()
        z_all = torch.as_tensor(np.asarray(codes, np.float32))
        out = []
        for start in range(0, len(z_all), batch_size):
            z = z_all[start:start + batch_size]
            if switches is not None:
                sw = tuple(s[start:start + batch_size] for s in switches)
            else:
                sw = tuple(s.expand(len(z), *s.shape[1:]) for s in self.default_switches_)
            out.append(self.net_.decode(z, sw)[:, 0])
        if not out:
            return np.zeros((0, *self.image_shape_), np.float32)
        return torch.cat(out).numpy()

    def reconstruct(self, X: Any) -> np.ndarray:
        codes, switches = self.encode(X)
        return self.inverse_transform(codes, switches)

    def _decode_path(self, codes: np.ndarray, pair: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.unpool != "maxunpool":
            return self.inverse_transform(codes)
        _, (i1, i2) = self.encode(pair)
        pick = torch.as_tensor((t >= 0.5).astype(np.int64))  # nearer endpoint's switches
        return self.inverse_transform(codes, (i1[pick], i2[pick]))

    def side_information_bits(self) -> int:
        """Bits per image the decoder gets besides the code (2 bits per pooled value for
        maxunpool's switches, 0 otherwise)."""
        if self.unpool != "maxunpool":
            return 0
        side = int(self.image_shape_[0])
        c1, c2 = self.channels
        return 2 * (c1 * (side // 2) ** 2 + c2 * (side // 4) ** 2)

    # -- persistence ----------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        state = {k: v.detach().numpy().copy() for k, v in self.net_.state_dict().items()}
        state["default_switches.0"] = self.default_switches_[0].numpy().astype(np.int64)
        state["default_switches.1"] = self.default_switches_[1].numpy().astype(np.int64)
        return state

    def _set_state(self, state: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.net_ = self._build(int(meta["image_shape"][0]))
        weights = {k: torch.from_numpy(v) for k, v in state.items()
                   if not k.startswith("default_switches")}
        self.net_.load_state_dict(weights, strict=True)
        self.net_.eval()
        self.default_switches_ = (torch.from_numpy(state["default_switches.0"]),
                                  torch.from_numpy(state["default_switches.1"]))
