"""How many CPU threads inference may use: one number shared by torch and ONNX Runtime.

On a small machine, decode threads and the model share the same cores; oversubscribing them
(torch's default plus ORT's default plus decoders) costs more than it gains.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def available_cores() -> int:
    """Cores this process may run on (affinity-aware); ``TRANSFERKIT_THREADS`` overrides."""
    override = os.environ.get("TRANSFERKIT_THREADS")
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise ValueError(f"TRANSFERKIT_THREADS={override!r}: expected a whole number") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def inference_threads(threads: int | None = None) -> int:
    """Intra-op threads for the model: all available cores unless told otherwise."""
    return available_cores() if threads is None else max(1, int(threads))


def decode_threads(workers: int | None = None) -> int:
    """Decode threads: as many as cores (decoding releases the GIL; the model overlaps it)."""
    return min(8, available_cores()) if workers is None else max(0, int(workers))


def set_torch_threads(threads: int | None = None) -> int:
    """Apply the thread count to torch (only when it differs: the call is not free)."""
    import torch

    n = inference_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run a block with ``threads`` torch intra-op threads, then restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
