"""libtiff's C-level messages, kept for the decoding thread instead of printed on stderr.

libtiff reports problems through one process-wide handler whose default prints to stderr
("file.tif: Using code not yet in table."), so a folder of damaged TIFFs floods the terminal
with lines that name no file. We install our own handler in the libtiff that Pillow loaded:
inside :func:`captured_tiff_messages` the formatted message is kept for the calling thread
(it becomes part of that file's skip reason); outside, it goes to stderr as before. Where
that library cannot be found (not Linux, a static build) nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
import sys
import threading
from collections.abc import Iterator

_local = threading.local()
# void handler(const char *module, const char *fmt, va_list ap): on x86-64 and arm64 a
# va_list parameter arrives as a pointer, which vsnprintf takes as it is.
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_SUPPORTED_MACHINES = {"x86_64", "amd64", "aarch64", "arm64"}
_vsnprintf = None  # libc's, bound by install()
_installed: list = []  # the ctypes callbacks, kept alive for as long as libtiff may call them
_install_lock = threading.Lock()


def _libtiff_path() -> str | None:
    """The libtiff file mapped into this process by Pillow's C extension (Linux)."""
    from PIL import _imaging  # noqa: F401 - maps the libtiff that Pillow links

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and "/libtiff" in parts[5]:
                    return parts[5].strip()
    except OSError:
        return None
    return None


def _format(fmt: bytes, args: int | None) -> str:
    buffer = ctypes.create_string_buffer(512)
    _vsnprintf(buffer, len(buffer), fmt, args)
    return buffer.value.decode("utf-8", "replace").strip()


def _on_message(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
    try:
        text = _format(fmt or b"", args)
    except Exception:  # noqa: BLE001 - never raise into C
        return
    messages = getattr(_local, "messages", None)
    if messages is not None:
        messages.append(text)
    else:
        sys.stderr.write(f"{(module or b'libtiff').decode('utf-8', 'replace')}: {text}\n")


def install() -> bool:
    """Route libtiff's warnings and errors through :func:`_on_message`; True if done."""
    global _vsnprintf
    with _install_lock:
        if _installed:
            return True
        if platform.machine().lower() not in _SUPPORTED_MACHINES:
            return False
        path = _libtiff_path()
        if path is None:
            return False
        try:
            libtiff = ctypes.CDLL(path)
            libc = ctypes.CDLL(None)
            _vsnprintf = libc.vsnprintf
            _vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                   ctypes.c_void_p]
            callback = _HANDLER(_on_message)
            for name in ("TIFFSetErrorHandler", "TIFFSetWarningHandler"):
                setter = getattr(libtiff, name)
                setter.argtypes = [_HANDLER]
                setter.restype = ctypes.c_void_p
                setter(callback)
        except (OSError, AttributeError):
            return False
        _installed.append(callback)
        return True



@contextlib.contextmanager
def captured_tiff_messages() -> Iterator[list[str]]:
    """Collect libtiff's messages raised by this thread inside the block."""
    previous = getattr(_local, "messages", None)
    _local.messages = messages = []
    try:
        yield messages
    finally:
        _local.messages = previous
