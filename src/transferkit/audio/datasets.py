"""Labelled clips: a folder with one sub-folder per class, or a CSV ``path,label``; plus the
spoken-digit sets (real Tux Paint recordings, generated espeak-ng voices)."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from transferkit.audio.io import list_audio

TUXPAINT_DIGITS = Path("/usr/share/tuxpaint/stamps/symbols/math")
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ENGLISH_TAGS = ("en", "en_GB")
# espeak-ng voices x variants: different "speakers" for generated training data. (Plain
# "en-gb" ignores variants, so it is left out; generate_espeak_digits skips repeats anyway.)
ESPEAK_VOICES = ("en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("", "+m3", "+f2", "+f4", "+m7", "+croak")


@dataclass
class AudioDataset:
    """Clip ``paths`` with their ``labels``; ``classes`` sorted."""

    paths: list[Path]
    labels: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


def read_audio_dataset(source: str | os.PathLike) -> AudioDataset:
    """One sub-folder per class (audio files inside, any depth), or a CSV with ``path`` and
    ``label`` columns (paths relative to the CSV's folder)."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _from_csv(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such folder or CSV")
    paths, labels = [], []
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        found = list_audio(folder)
        paths += found
        labels += [folder.name] * len(found)
    if not paths:
        raise ValueError(f"{source}: no audio files in class sub-folders")
    return AudioDataset(paths, labels)


def _from_csv(path: Path) -> AudioDataset:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: needs a header with 'path' and 'label' columns")
    paths = [(path.parent / r["path"]) if not Path(r["path"]).is_absolute() else Path(r["path"])
             for r in rows]
    return AudioDataset(paths, [r["label"] for r in rows])


def tuxpaint_digits(languages: tuple[str, ...] | None = ENGLISH_TAGS,
                    folder: Path = TUXPAINT_DIGITS) -> AudioDataset:
    """Human-spoken digits from Debian's tuxpaint-stamps-default: ``N.ogg`` (English) and
    ``N_<lang>.ogg``; ``languages=None`` keeps all 22 language sets."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: install the Debian package tuxpaint-stamps-default")
    pattern = re.compile(r"^([0-9])(?:_([a-z]{2}(?:_[a-zA-Z]{2})?))?\.ogg$")
    paths, labels = [], []
    for path in sorted(folder.glob("*.ogg")):
        match = pattern.match(path.name)
        if match is None:  # N_desc_<lang>.ogg: spoken descriptions, not digits
            continue
        language = match.group(2) or "en"
        if languages is None or language in languages:
            paths.append(path)
            labels.append(match.group(1))
    return AudioDataset(paths, labels)


def tuxpaint_language(path: str | os.PathLike) -> str:
    stem = Path(path).stem
    return stem.split("_", 1)[1] if "_" in stem else "en"


def espeak_binary() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise FileNotFoundError("espeak-ng not found: apt-get install espeak-ng "
                                "(scripts/install.sh installs it)")
    return found


def generate_espeak_digits(output: str | os.PathLike, voices: tuple[str, ...] = ESPEAK_VOICES,
                           variants: tuple[str, ...] = ESPEAK_VARIANTS,
                           speeds: tuple[int, ...] = (150,)) -> AudioDataset:
    """Write ``OUT/<digit>/<voice><variant>-<speed>.wav`` for every digit word.

    A combination that renders byte-identical audio to one already written (some voices
    ignore variants) is not kept, so no clip is counted twice or lands on both sides of a split.
    """
    binary = espeak_binary()
    output = Path(output)
    paths, labels = [], []
    for digit, word in enumerate(DIGIT_WORDS):
        folder = output / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        seen: set[str] = set()
        for voice in voices:
            for variant in variants:
                for speed in speeds:
                    name = re.sub(r"[^\w.-]", "_", f"{voice}{variant}-{speed}") + ".wav"
                    target = folder / name
                    temporary = folder / f".{name}.tmp"
                    subprocess.run([binary, "-v", voice + variant, "-s", str(speed), "-w",
                                    str(temporary), word], check=True, capture_output=True)
                    digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
                    if digest in seen:
                        temporary.unlink()
                        continue
                    seen.add(digest)
                    temporary.replace(target)
                    paths.append(target)
                    labels.append(str(digit))
    return AudioDataset(paths, labels)


def write_spoken_digits(output: str | os.PathLike, languages: tuple[str, ...] | None = None
                        ) -> AudioDataset:
    """Copy the Tux Paint digits into ``OUT/<digit>/<lang>.ogg`` (a class-folder dataset)."""
    source = tuxpaint_digits(languages)
    output = Path(output)
    paths = []
    for path, label in zip(source.paths, source.labels):
        target = output / label / f"{tuxpaint_language(path)}.ogg"
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(path, temporary)
        temporary.replace(target)
        paths.append(target)
    return AudioDataset(paths, list(source.labels))


def write_spectrogram_images(data: str | os.PathLike | AudioDataset, output: str | os.PathLike,
                             n_mels: int = 128, side: int = 224
                             ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Each clip's log-mel as ``OUT/<label>/<name>.png``: an image dataset, so every image
    strategy (``train --strategy finetune``, ``advise``, ...) runs on sounds unchanged.
    Returns (written PNGs, (path, reason) of refused clips)."""
    from transferkit.audio.encoders import spectrogram_image
    from transferkit.audio.io import load_audio
    from transferkit.errors import AudioLoadError
    from transferkit.utils import atomic_path

    dataset = data if isinstance(data, AudioDataset) else read_audio_dataset(data)
    output = Path(output)
    written, failures = [], []
    for number, (path, label) in enumerate(zip(dataset.paths, dataset.labels)):
        try:
            samples = load_audio(path)
        except AudioLoadError as exc:
            failures.append((exc.path, exc.reason))
            continue
        target = output / label / f"{number:05d}-{Path(path).stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".png") as tmp:
            spectrogram_image(samples, n_mels, side).save(tmp, format="PNG")
        written.append(target)
    return written, failures
