"""Files -> uint8 pixel batches, decoded by a thread pool while the model runs.

Why threads and uint8: Pillow releases the GIL while it decodes and resizes, so threads decode
in parallel with no process start-up or pickling; JPEGs decode at reduced size (``draft``);
and batches cross to the model as uint8 (4x smaller than float) and are normalised in one
vectorised step, bit-identical to torchvision's ``ToTensor`` + ``Normalize``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from transferkit.backbones import Preprocessing
from transferkit.data import ImageLoadError, load_image


@dataclass
class PixelBatch:
    """Decoded images of one batch: ``pixels[i]`` belongs to input number ``indices[i]``."""

    indices: list[int]
    pixels: np.ndarray | None  # (n, H, W, 3) uint8, None when every file failed
    failures: list[tuple[int, str]] = field(default_factory=list)


def resize_crop(prep: Preprocessing) -> Callable[[Image.Image], Image.Image]:
    """The PIL half of ``prep.eval_transform()``: shorter side to ``resize_size``, centre crop."""
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode

    return T.Compose([T.Resize(prep.resize_size, interpolation=InterpolationMode(
        prep.interpolation)), T.CenterCrop(prep.input_size)])


def decode_file(path: str | os.PathLike, prep: Preprocessing,
                transform: Callable | None = None) -> np.ndarray:
    """One file -> (S, S, 3) uint8 ready for the model; raises :class:`ImageLoadError`."""
    image = load_image(path, draft_size=prep.resize_size)
    try:
        image = (transform or resize_crop(prep))(image)
        return np.asarray(image, dtype=np.uint8).reshape(prep.input_size, prep.input_size, 3)
    except Exception as exc:  # noqa: BLE001 - a transform failure is a bad file too
        raise ImageLoadError(path, f"could not preprocess ({exc.__class__.__name__}: "
                                   f"{exc})") from exc


def decode_or_reason(path: str | os.PathLike, prep: Preprocessing,
                     transform: Callable | None = None) -> np.ndarray | str:
    try:
        return decode_file(path, prep, transform)
    except ImageLoadError as exc:
        return exc.reason


def assemble(indices: Sequence[int], results: Sequence[np.ndarray | str]) -> PixelBatch:
    good = [(i, r) for i, r in zip(indices, results) if not isinstance(r, str)]
    bad = [(i, r) for i, r in zip(indices, results) if isinstance(r, str)]
    pixels = np.stack([r for _, r in good]) if good else None
    return PixelBatch([i for i, _ in good], pixels, bad)


def iter_pixel_batches(paths: Sequence[str | os.PathLike], prep: Preprocessing,
                       batch_size: int = 32, workers: int = 2,
                       prefetch_batches: int = 2) -> Iterator[PixelBatch]:
    """Batches in input order; ``workers`` decode threads stay ``prefetch_batches`` ahead."""
    transform = resize_crop(prep)
    if workers <= 0:
        for start in range(0, len(paths), batch_size):
            idx = list(range(start, min(start + batch_size, len(paths))))
            yield assemble(idx, [decode_or_reason(paths[i], prep, transform) for i in idx])
        return
    window = batch_size * (prefetch_batches + 1)
    with ThreadPoolExecutor(workers, thread_name_prefix="transferkit-decode") as pool:
        pending: deque = deque()
        submitted = 0
        try:
            for start in range(0, len(paths), batch_size):
                while submitted < len(paths) and submitted < start + window:
                    pending.append(pool.submit(decode_or_reason, paths[submitted], prep,
                                               transform))
                    submitted += 1
                idx = list(range(start, min(start + batch_size, len(paths))))
                yield assemble(idx, [pending.popleft().result() for _ in idx])
        finally:
            for future in pending:
                future.cancel()


def normalize_pixels(pixels: np.ndarray, prep: Preprocessing,
                     channels_last: bool = True) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> normalised float (N, 3, H, W) batch.

    With ``channels_last`` the result keeps the NHWC memory layout (what PyTorch's CPU
    convolutions prefer); otherwise it is a contiguous NCHW tensor (what ONNX Runtime takes).
    """
    pixels = np.ascontiguousarray(pixels)
    if not pixels.flags.writeable:  # a view of a PIL buffer; torch wants writable memory
        pixels = pixels.copy()
    batch = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    if not channels_last:
        batch = batch.contiguous()
    mean = torch.as_tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.as_tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.float().div_(255).sub_(mean).div_(std)
