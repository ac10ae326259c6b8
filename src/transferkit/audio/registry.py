"""``AUDIO_ENCODERS``: one registry for every audio encoder, built on ``utils.Registry``."""

from __future__ import annotations

from typing import Any

from transferkit.audio.encoders import (
    AudioEncoder,
    LogmelEncoder,
    MfccEncoder,
    SpectrogramEncoder,
    WaveletEncoder,
)
from transferkit.audio.speech import SpeechEncoder
from transferkit.errors import IncompatibleModelError
from transferkit.utils import Registry

AUDIO_ENCODERS: Registry[AudioEncoder] = Registry("audio encoder")
# The best one whose licence allows any use, per benchmarks/bench_audio.py.
DEFAULT_AUDIO_ENCODER = "logmel"

AUDIO_ENCODERS.register("mfcc", MfccEncoder, description="20 MFCCs + deltas (librosa), mean "
                                                         "and std over time; 80-d")
AUDIO_ENCODERS.register("logmel", LogmelEncoder, description="64 log-mel bands (librosa), mean "
                                                             "and std over time; 128-d")
AUDIO_ENCODERS.register("wavelet", WaveletEncoder, description="db4 wavelet sub-band statistics "
                                                               "(PyWavelets); 32-d")
AUDIO_ENCODERS.register("spectrogram", SpectrogramEncoder,
                        description="log-mel image through an ImageNet backbone (backbone=..., "
                                    "default efficientnet_lite0); dim = backbone features")

AUDIO_ENCODERS.register("speech", SpeechEncoder,
                        description="opt-in: Google's speech embedding (ONNX in openwakeword "
                                    "0.5.1), mean+max over 0.76 s windows; 192-d; licence mixed "
                                    "(Apache-2.0 credit vs CC BY-NC-SA 4.0)")


def list_audio_encoders() -> list[str]:
    return AUDIO_ENCODERS.list()


def create_audio_encoder(name: str = DEFAULT_AUDIO_ENCODER, **options: Any) -> AudioEncoder:
    """An audio encoder by registered name; options it does not take are refused."""
    return AUDIO_ENCODERS.create(name, **options)


def audio_encoder_from_spec(spec: dict[str, Any], where: str = "model") -> AudioEncoder:
    """Rebuild the encoder a saved artefact names, refusing one that would embed differently."""
    if spec.get("kind") != "audio":
        raise IncompatibleModelError(f"{where}: not an audio model (spec kind "
                                     f"{spec.get('kind', 'image')!r}, name {spec.get('name')!r})")
    encoder = create_audio_encoder(spec["name"], **spec.get("params", {}))
    found = encoder.spec()["weights_id"]
    if found != spec.get("weights_id"):
        raise IncompatibleModelError(f"{where}: made by audio encoder {spec.get('weights_id')} "
                                     f"but this installation builds {found}")
    return encoder
