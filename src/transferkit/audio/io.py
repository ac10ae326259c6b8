"""Audio files -> mono float32 at 16 kHz, or one clear :class:`AudioLoadError` per file.

Policy (the same for every encoder, so a clip always embeds the same way):

* decoded with soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3 with libsndfile >= 1.1);
* multichannel is mixed down to mono by averaging the channels;
* any sample rate from 4 kHz up is resampled to :data:`SAMPLE_RATE` (16 kHz, soxr);
* leading and trailing silence quieter than ``trim_db`` (40 dB below the peak) is trimmed;
* a clip shorter than :data:`MIN_SECONDS` after trimming is padded with zeros at the end;
* a file longer than ``max_seconds`` (default 60 s) is **refused**, not windowed: a long
  recording is a different task (cut it into clips first); its length is read from the header,
  so an hours-long file costs nothing;
* a zero-byte, truncated or non-audio file, or a silent one (peak below 1e-4), is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from transferkit.errors import AudioLoadError

SAMPLE_RATE = 16_000
MIN_SECONDS = 0.5
MAX_SECONDS = 60.0
MIN_SOURCE_RATE = 4_000
SILENCE_PEAK = 1e-4
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")


def _header(path: Path):
    """soundfile's header info, or AudioLoadError with libsndfile's own reason."""
    import soundfile as sf

    try:
        return sf.info(str(path))
    except Exception as exc:  # libsndfile's error types vary by version; all mean "not audio"
        raise AudioLoadError(path, f"not readable audio ({_first_line(exc)})") from None


def _truncated(info) -> bool:
    """libsndfile notes a data chunk longer than the file as ``data : N (should be M)``."""
    return any(line.strip().startswith(("data", "RIFF")) and "should be" in line
               for line in str(getattr(info, "extra_info", "")).splitlines())


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def load_audio(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE,
               max_seconds: float = MAX_SECONDS, trim_db: float | None = 40.0) -> np.ndarray:
    """Mono float32 samples at ``sample_rate``; :class:`AudioLoadError` naming the reason."""
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioLoadError(path, "empty file (0 bytes)")
    import soundfile as sf

    info = _header(path)
    if info.samplerate < MIN_SOURCE_RATE:
        raise AudioLoadError(path, f"sample rate {info.samplerate} Hz is below "
                                   f"{MIN_SOURCE_RATE} Hz")
    if _truncated(info):
        raise AudioLoadError(path, f"truncated: the header promises more audio than the "
                                   f"file holds ({info.frames / info.samplerate:.2f} s present)")
    if info.frames <= 0:
        raise AudioLoadError(path, "no audio frames (empty or truncated)")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise AudioLoadError(path, f"{_duration(seconds)} long; clips longer than "
                                   f"{max_seconds:g} s are refused (cut it into clips first)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioLoadError(path, f"truncated or corrupt audio ({_first_line(exc)})") from None
    if data.shape[0] == 0:
        raise AudioLoadError(path, "no audio frames (empty or truncated)")
    return prepare_samples(data.mean(axis=1), rate, sample_rate=sample_rate, trim_db=trim_db,
                           where=path)


def prepare_samples(samples: np.ndarray, rate: int, *, sample_rate: int = SAMPLE_RATE,
                    trim_db: float | None = 40.0, where: str | os.PathLike = "clip"
                    ) -> np.ndarray:
    """Mono samples at any rate -> the policy above (resample, refuse silence, trim, pad)."""
    samples = np.asarray(samples, np.float32)
    if samples.ndim != 1:
        raise AudioLoadError(where, f"expected mono samples, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise AudioLoadError(where, "samples contain NaN or infinity")
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak < SILENCE_PEAK:
        raise AudioLoadError(where, f"silent (peak amplitude {peak:.1e})")
    if rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, rate, sample_rate).astype(np.float32)
    if trim_db is not None:
        import librosa

        samples, _ = librosa.effects.trim(samples, top_db=trim_db)
    minimum = int(MIN_SECONDS * sample_rate)
    if len(samples) < minimum:
        samples = np.pad(samples, (0, minimum - len(samples)))
    return np.ascontiguousarray(samples, np.float32)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def list_audio(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursive, by extension, sorted); a file lists itself."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such file or folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                  and p.is_file())


def try_load_clips(paths: Iterable[str | os.PathLike], **options
                   ) -> tuple[list[Path], list[np.ndarray], list[tuple[str, str]]]:
    """(loaded paths, their samples, (path, reason) for every file refused); never raises
    for a bad file, so a batch continues past it."""
    good, clips, failures = [], [], []
    for path in paths:
        try:
            clips.append(load_audio(path, **options))
            good.append(Path(path))
        except AudioLoadError as exc:
            failures.append((exc.path, exc.reason))
    return good, clips, failures


def tone(frequency: float, seconds: float = 1.0, rate: int = SAMPLE_RATE,
         amplitude: float = 0.5) -> np.ndarray:
    """A sine tone (handy for tests and demos)."""
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_wav(path: str | os.PathLike, samples: Sequence[float] | np.ndarray,
              rate: int = SAMPLE_RATE) -> Path:
    """Write a 16-bit PCM wav atomically."""
    import soundfile as sf

    from transferkit.utils import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.asarray(samples, np.float32), rate, subtype="PCM_16",
                 format="WAV")
    return path
