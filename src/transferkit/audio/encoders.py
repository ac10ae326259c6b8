"""Audio encoders: clips (mono float32 at 16 kHz, see ``audio.io``) in, float32 rows out.

Each encoder is parameters only (nothing is fitted), so ``spec()`` alone rebuilds it: the
spec records the name, parameters, sample rate, the library versions that compute the
features and, for the spectrogram encoder, the image backbone's own spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import numpy as np

from transferkit.audio.io import SAMPLE_RATE

N_FFT = 512  # 32 ms windows
HOP = 160  # 10 ms hop


def _params_hash(name: str, params: dict[str, Any], extra: str = "") -> str:
    text = json.dumps({"name": name, **params}, sort_keys=True) + extra
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pooled(frames: np.ndarray) -> np.ndarray:
    """(features, time) -> mean and standard deviation over time, concatenated."""
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float32)


def log_mel(samples: np.ndarray, n_mels: int = 64, sample_rate: int = SAMPLE_RATE
            ) -> np.ndarray:
    """(n_mels, frames) log-mel power in dB relative to the clip's peak (at most 0)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=samples, sr=sample_rate, n_fft=N_FFT,
                                         hop_length=HOP, n_mels=n_mels, fmax=sample_rate / 2)
    return librosa.power_to_db(mel, ref=np.max, top_db=80.0)


def spectrogram_image(samples: np.ndarray, n_mels: int = 128, side: int = 224):
    """The clip's log-mel as an RGB PIL image, ``side`` pixels square: frequency bottom to top,
    time left to right, -80..0 dB mapped to black..white."""
    from PIL import Image

    db = log_mel(samples, n_mels)
    pixels = np.clip((db + 80.0) / 80.0 * 255.0, 0, 255).astype(np.uint8)[::-1]
    return Image.fromarray(np.ascontiguousarray(pixels)).resize(
        (side, side), Image.BILINEAR).convert("RGB")


class AudioEncoder:
    """Shared part: ``transform(clips)`` stacks ``encode_clip``; ``spec()`` names it."""

    name = "audio"
    library = "librosa"

    def get_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def encode_clip(self, samples: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def transform(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 rows, one per clip."""
        if not len(clips):
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.encode_clip(np.asarray(c, np.float32)) for c in clips])

    @property
    def dim(self) -> int:
        return int(self.encode_clip(np.zeros(SAMPLE_RATE, np.float32) + 1e-3).shape[0])

    def licence_note(self) -> str | None:
        """A line the CLI prints when the encoder's weights carry a restrictive licence."""
        return None

    def spec(self) -> dict[str, Any]:
        params = self.get_params()
        return {"kind": "audio", "name": self.name, "encoder": self.name,
                "weights_id": f"{self.name}-{_params_hash(self.name, params)}",
                "num_features": self.dim, "sample_rate": SAMPLE_RATE, "params": params,
                "library": self.library, "library_version": version(self.library)}


class MfccEncoder(AudioEncoder):
    """MFCCs and their deltas (librosa), mean + std over time: the classic speech baseline."""

    name = "mfcc"

    def __init__(self, n_mfcc: int = 20, n_mels: int = 40, deltas: bool = True) -> None:
        self.n_mfcc, self.n_mels, self.deltas = n_mfcc, n_mels, deltas

    def get_params(self) -> dict[str, Any]:
        return {"n_mfcc": self.n_mfcc, "n_mels": self.n_mels, "deltas": self.deltas}

    def encode_clip(self, samples: np.ndarray) -> np.ndarray:
        import librosa

        mfcc = librosa.feature.mfcc(y=samples, sr=SAMPLE_RATE, n_mfcc=self.n_mfcc,
                                    n_fft=N_FFT, hop_length=HOP, n_mels=self.n_mels)
        parts = [_pooled(mfcc)]
        if self.deltas:
            width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))
            parts.append(_pooled(librosa.feature.delta(mfcc, width=max(width, 3),
                                                       mode="nearest")))
        return np.concatenate(parts)


class LogmelEncoder(AudioEncoder):
    """Log-mel band energies (librosa), mean + std over time."""

    name = "logmel"

    def __init__(self, n_mels: int = 64) -> None:
        self.n_mels = n_mels

    def get_params(self) -> dict[str, Any]:
        return {"n_mels": self.n_mels}

    def encode_clip(self, samples: np.ndarray) -> np.ndarray:
        return _pooled(log_mel(samples, self.n_mels))


class WaveletEncoder(AudioEncoder):
    """Discrete wavelet sub-bands (PyWavelets): per band log energy, mean |x|, std, and the
    share of total energy; octave bands without a Fourier transform."""

    name = "wavelet"
    library = "PyWavelets"

    def __init__(self, wavelet: str = "db4", level: int = 7) -> None:
        self.wavelet, self.level = wavelet, level

    def get_params(self) -> dict[str, Any]:
        return {"wavelet": self.wavelet, "level": self.level}

    def encode_clip(self, samples: np.ndarray) -> np.ndarray:
        import pywt

        bands = pywt.wavedec(samples, self.wavelet, level=self.level)
        energy = np.asarray([np.mean(b.astype(np.float64) ** 2) for b in bands])
        stats = [np.log10(energy + 1e-10), [np.mean(np.abs(b)) for b in bands],
                 [np.std(b) for b in bands], energy / max(energy.sum(), 1e-12)]
        return np.concatenate([np.asarray(s, np.float32) for s in stats])


class SpectrogramEncoder(AudioEncoder):
    """The log-mel spectrogram as a picture through an ImageNet backbone (any of them):
    transfer across domains. Frequency runs bottom to top, time left to right, the clip
    stretched to the backbone's square input."""

    name = "spectrogram"
    library = "librosa"

    def __init__(self, backbone: str = "efficientnet_lite0", n_mels: int = 128,
                 batch_size: int = 32) -> None:
        self.backbone, self.n_mels, self.batch_size = backbone, n_mels, batch_size
        self._model = None

    def get_params(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "n_mels": self.n_mels}

    @property
    def model(self):
        if self._model is None:
            from transferkit.backbones import create

            model = create(self.backbone)
            # No centre crop: it would cut the clip's start and end and the highest bands.
            whole = model.preprocessing.with_size(model.preprocessing.input_size, crop_pct=1.0)
            self._model = model.with_preprocessing(whole)
        return self._model

    def image(self, samples: np.ndarray):
        """The clip's log-mel as an RGB PIL image of the backbone's input size."""
        return spectrogram_image(samples, self.n_mels, int(self.model.preprocessing.input_size))

    def transform(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        from transferkit.features import embed_images

        if not len(clips):
            return np.zeros((0, self.dim), np.float32)
        images = [self.image(np.asarray(c, np.float32)) for c in clips]
        return np.asarray(embed_images(images, self.model, batch_size=self.batch_size),
                          np.float32)

    @property
    def dim(self) -> int:
        return int(self.model.num_features)

    def spec(self) -> dict[str, Any]:
        spec = super().spec()
        image_spec = self.model.spec()
        spec["backbone"] = image_spec
        spec["weights_id"] = (f"spectrogram-{_params_hash(self.name, self.get_params())}-"
                              f"{image_spec.get('weights_id')}")
        return spec
