"""Every file under an input, accounted for: an image to try, or ignored as not an image.

A file with a known image extension is tried (and, if it does not decode, skipped with a
reason by the loader). Any other file is accepted when Pillow identifies its header (a PNG
without an extension, a JPEG named ``.dat``); that costs one ``open`` and a read of the
first bytes per such file (~0.1 ms), and only files without an image extension pay it.
Hidden files and folders (``.name``) are ignored without being opened or entered (a
hidden folder counts as one entry). Ignored files are
counted by extension so the user sees what was left out; the full list of skipped and
ignored files goes to a CSV beside the output (:func:`write_failure_report`).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from transferkit.data.images import IMAGE_EXTENSIONS
from transferkit.utils import atomic_path

HIDDEN = "(hidden)"
NO_EXTENSION = "(no extension)"


@dataclass
class ImageScan:
    """Files found under some inputs: ``images`` to try and ``ignored`` non-images."""

    images: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)

    def ignored_by_kind(self) -> dict[str, int]:
        return count_ignored(self.ignored)

    def __add__(self, other: ImageScan) -> ImageScan:
        return ImageScan(self.images + other.images, self.ignored + other.ignored)


def scan_images(source: str | os.PathLike | Iterable[str | os.PathLike],
                recursive: bool = True) -> ImageScan:
    """Images under a folder, a file, or a list of them (sorted per folder, reproducible).

    A file named directly is always tried; files found in folders are tried when their
    extension or their header says image.
    """
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    scan = ImageScan()
    for item in items:
        scan = scan + _scan_one(Path(item), recursive)
    return scan


def _scan_one(root: Path, recursive: bool) -> ImageScan:
    if root.is_file():
        return ImageScan([root], [])
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    scan = ImageScan()
    for folder, subfolders, files in os.walk(root):
        hidden = sorted(d for d in subfolders if d.startswith("."))
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")) \
            if recursive else []
        here = Path(folder)
        scan.ignored.extend(here / d for d in hidden)  # one entry each, never opened
        for name in sorted(files):
            path = here / name
            is_image = not name.startswith(".") and is_image_file(path)
            (scan.images if is_image else scan.ignored).append(path)
    scan.images.sort()
    scan.ignored.sort()
    return scan


def list_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (see :func:`scan_images`), sorted for reproducible order."""
    return scan_images(root, recursive).images


def is_image_file(path: str | os.PathLike) -> bool:
    """Known image extension, or a header Pillow identifies (decoding may still fail)."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return False
    except Exception:  # noqa: BLE001 - a plugin choking on junk still means "not an image"
        return False


def ignored_kind(path: str | os.PathLike) -> str:
    """How an ignored file is counted: hidden, its extension, or no extension."""
    path = Path(path)
    if path.name.startswith("."):
        return HIDDEN
    return path.suffix.lower() or NO_EXTENSION


def ignored_reason(path: str | os.PathLike) -> str:
    """Why a file was not tried, for the failure report."""
    kind = ignored_kind(path)
    if kind == HIDDEN:
        return "hidden (not opened)"
    return f"not an image ({kind.strip('()')})"


def count_ignored(ignored: Sequence[str | os.PathLike]) -> dict[str, int]:
    """Counts by :func:`ignored_kind`, largest first."""
    return dict(Counter(ignored_kind(p) for p in ignored).most_common())


def describe_ignored(ignored: Sequence[str | os.PathLike]) -> str:
    """``ignored 4 files (not images): .txt 2, .md 1, (hidden) 1``, or '' when none."""
    if not ignored:
        return ""
    counts = ", ".join(f"{kind} {n}" for kind, n in count_ignored(ignored).items())
    noun = "file" if len(ignored) == 1 else "files"
    return f"ignored {len(ignored)} {noun} (not images): {counts}"


def failure_report_path(output: str | os.PathLike) -> Path:
    """Where the skipped/ignored list of an artefact goes: ``OUTPUT.failures.csv`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".failures.csv")


def write_failure_report(output: str | os.PathLike, failures: Sequence[tuple[str, str]],
                         ignored: Sequence[str | os.PathLike] = ()) -> Path | None:
    """Write every skipped (with its reason) and ignored file beside ``output`` (atomic).

    Returns the CSV's path, or None when there was nothing to report (a stale report from
    an earlier run is removed, so the file never describes another run).
    """
    report = failure_report_path(output)
    if not failures and not ignored:
        report.unlink(missing_ok=True)
        return None
    with atomic_path(report, suffix=".csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "outcome", "reason"])
            writer.writerows((str(p), "skipped", reason) for p, reason in failures)
            writer.writerows((str(p), "ignored", ignored_reason(p)) for p in ignored)
    return report


def read_failure_report(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a report written by :func:`write_failure_report`."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
