"""Google's speech embedding (96-d per 0.76 s window) and its mel front end, as the ONNX files
inside the ``openwakeword==0.5.1`` package (install with ``pip install --no-deps``).

Opt-in, never the default: the licence wording is mixed. The embedding is credited to
Google's Apache-2.0 release (tfhub.dev/google/speech_embedding/1), while openWakeWord's README
puts "all included pre-trained models" under CC BY-NC-SA 4.0 (non-commercial).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.audio.encoders import AudioEncoder
from transferkit.audio.io import SAMPLE_RATE

SPEECH_PACKAGE = "openwakeword"
SPEECH_VERSION = "0.5.1"
LICENCE_NOTE = ("the speech encoder uses Google's speech_embedding as shipped in "
                "openwakeword 0.5.1: credited to Google's Apache-2.0 release, but openWakeWord "
                "puts its included models under CC BY-NC-SA 4.0 (non-commercial); check "
                "before commercial use")
WINDOW_FRAMES = 76  # what the embedding model takes: 76 mel frames of 10 ms
STEP_FRAMES = 8
MIN_SAMPLES = SAMPLE_RATE  # 1 s, so even a short word gives a few windows


def speech_model_files() -> tuple[Path, Path]:
    """(melspectrogram.onnx, embedding_model.onnx) inside the installed package (not imported:
    the package's own imports need dependencies installed with --no-deps left out)."""
    found = importlib.util.find_spec(SPEECH_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"the speech encoder needs {SPEECH_PACKAGE}=={SPEECH_VERSION}: "
                                f"pip install --no-deps {SPEECH_PACKAGE}=={SPEECH_VERSION}")
    models = Path(list(found.submodule_search_locations)[0]) / "resources" / "models"
    files = models / "melspectrogram.onnx", models / "embedding_model.onnx"
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; only {SPEECH_PACKAGE} {SPEECH_VERSION} "
                                    f"ships these models (0.6 removed them)")
    return files


class SpeechEncoder(AudioEncoder):
    """Windows of Google's speech embedding over the clip, mean + max pooled: 192-d."""

    name = "speech"
    library = "onnxruntime"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._sessions = None

    def get_params(self) -> dict[str, Any]:
        return {}

    def licence_note(self) -> str | None:
        return LICENCE_NOTE

    def _models(self):
        if self._sessions is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            self._sessions = tuple(ort.InferenceSession(str(p), sess_options=options,
                                                        providers=["CPUExecutionProvider"])
                                   for p in speech_model_files())
        return self._sessions

    def encode_clip(self, samples: np.ndarray) -> np.ndarray:
        mel_model, embedding_model = self._models()
        if len(samples) < MIN_SAMPLES:
            before = (MIN_SAMPLES - len(samples)) // 2
            samples = np.pad(samples, (before, MIN_SAMPLES - len(samples) - before))
        pcm = np.clip(samples * 32767.0, -32768, 32767).astype(np.int16).astype(np.float32)
        mel = np.squeeze(mel_model.run(None, {"input": pcm[None]})[0]) / 10.0 + 2.0
        starts = range(0, mel.shape[0] - WINDOW_FRAMES + 1, STEP_FRAMES)
        windows = np.stack([mel[s:s + WINDOW_FRAMES] for s in starts])[..., None]
        vectors = embedding_model.run(None, {"input_1": windows.astype(np.float32)})[0]
        vectors = vectors.reshape(len(windows), -1)
        return np.concatenate([vectors.mean(axis=0), vectors.max(axis=0)]).astype(np.float32)

    @property
    def dim(self) -> int:
        return 192

    def spec(self) -> dict[str, Any]:
        from transferkit.text.encoders import file_sha256

        spec = super().spec()
        hashes = "-".join(file_sha256(p) for p in speech_model_files())
        spec.update(weights_id=f"speech-{hashes}", package=SPEECH_PACKAGE,
                    package_version=SPEECH_VERSION, licence=LICENCE_NOTE)
        return spec
