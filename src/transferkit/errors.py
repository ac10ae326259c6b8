"""Every error transferkit raises on purpose, under one base class.

Catch :class:`TransferkitError` to handle any of them (the CLI turns them into one line and
exit code 2). Each class also derives from the builtin a caller would expect (``ValueError``
for bad values, ``KeyError`` for missing ids, ...) so existing ``except`` clauses keep working.
Messages name the file or object and, where there is one, the fix.
"""

from __future__ import annotations

import errno
import os
from typing import Any

__all__ = [
    "TransferkitError", "ImageLoadError", "IncompatibleModelError", "MissingWeightsError",
    "NotFittedError", "UnknownNameError", "InvalidOptionError", "NotInIndexError",
    "UnknownWordError", "AudioLoadError", "ServiceBusy", "TrainingInterrupted", "DiskFullError",
    "check_is_fitted", "is_disk_full",
]


class TransferkitError(Exception):
    """Base of every error transferkit raises deliberately (never a bug)."""


class ImageLoadError(TransferkitError):
    """A file could not be read as an image; ``path`` and a one-line ``reason``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across worker processes with both fields
        return type(self), (self.path, self.reason)


class IncompatibleModelError(TransferkitError, ValueError):
    """An input was (or would be) embedded by another model or preprocessing."""


class MissingWeightsError(TransferkitError, RuntimeError):
    """Pretrained weights are not available on this machine; the message says how to get them."""


class NotFittedError(TransferkitError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (or ``load``)."""


class UnknownNameError(TransferkitError, ValueError):
    """A registry was asked for a name it does not hold; the message lists the known ones."""


class InvalidOptionError(TransferkitError, ValueError):
    """A keyword argument or option that the callee does not accept, or a value out of range."""


class NotInIndexError(TransferkitError, KeyError):
    """An id, path or text that an index does not hold."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownWordError(NotInIndexError):
    """A word that a word-vector table does not hold."""


class AudioLoadError(ImageLoadError):
    """A file could not be read as usable audio; ``path`` and a one-line ``reason``.

    A sibling of :class:`ImageLoadError` in spirit, derived from it so batch code that skips
    unreadable inputs (``except ImageLoadError``) skips bad clips the same way.
    """


class ServiceBusy(TransferkitError):
    """More requests are waiting for the model than the service is willing to queue;
    ``retry_after`` is the whole seconds a client should wait before trying again."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TrainingInterrupted(TransferkitError):
    """A run stopped early on purpose (``stop_after_epochs``); its checkpoint allows resuming."""

    def __init__(self, checkpoint: os.PathLike, epoch: int) -> None:
        self.checkpoint, self.epoch = checkpoint, epoch
        super().__init__(f"stopped after epoch {epoch}; checkpoint in {checkpoint} "
                         f"(run again with resume=True / --resume to continue)")


class DiskFullError(TransferkitError, OSError):
    """An artefact could not be written for lack of space (or over a file-size limit); the
    previous version of it, if any, is untouched and no partial file is left."""

    def __init__(self, path: str | os.PathLike, cause: BaseException) -> None:
        self.path = str(path)
        detail = getattr(cause, "strerror", None) or str(cause).splitlines()[0][:120]
        super().__init__(f"{self.path}: not written: no space left on the device or over the "
                         f"file-size limit ({detail}); the previous version, if any, is untouched")

    def __str__(self) -> str:
        return str(self.args[0])


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
# How libraries that wrap the OS error in their own (pyarrow, safetensors) spell it.
_DISK_FULL_WORDS = ("No space left", "File too large", "Disk quota exceeded", "os error 28",
                    "os error 27", "os error 122")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk or a file-size limit is full."""
    while exc is not None:
        if getattr(exc, "errno", None) in _DISK_FULL_ERRNOS or \
                any(word in str(exc) for word in _DISK_FULL_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def check_is_fitted(estimator: Any, attributes: str | tuple[str, ...] | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has its learned state.

    ``attributes`` names what ``fit`` sets; without it, any public attribute ending in ``_``
    counts (scikit-learn's convention).
    """
    if isinstance(attributes, str):
        attributes = (attributes,)
    if attributes is not None:
        fitted = all(getattr(estimator, name, None) is not None for name in attributes)
    else:
        fitted = any(name.endswith("_") and not name.startswith("_")
                     for name in vars(estimator))
    if not fitted:
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet: call fit() "
                             f"first, or load a saved one")
