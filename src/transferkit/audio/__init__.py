"""Sounds through the same heads and index as images and texts.

``load_audio(path)`` decodes any clip to mono float32 at 16 kHz (or raises one clear
:class:`AudioLoadError`); encoders from ``AUDIO_ENCODERS`` (``mfcc``, ``logmel``, ``wavelet``,
``spectrogram``; opt-in ``speech``) turn clips into float32 rows with a ``spec()``;
``train_audio_classifier`` fits any head, ``build_audio_index`` makes a searchable index.
"""

from transferkit.audio.advisor import advise_audio, format_audio_advice
from transferkit.audio.datasets import (
    DIGIT_WORDS,
    AudioDataset,
    generate_espeak_digits,
    read_audio_dataset,
    tuxpaint_digits,
    tuxpaint_language,
    write_spectrogram_images,
    write_spoken_digits,
)
from transferkit.audio.embed import embed_audio, embed_clips
from transferkit.audio.encoders import (
    AudioEncoder,
    LogmelEncoder,
    MfccEncoder,
    SpectrogramEncoder,
    WaveletEncoder,
    log_mel,
    spectrogram_image,
)
from transferkit.audio.index import AudioIndex, build_audio_index, is_audio_index
from transferkit.audio.io import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    list_audio,
    load_audio,
    prepare_samples,
    tone,
    try_load_clips,
    write_wav,
)
from transferkit.audio.model import (
    AudioModel,
    is_audio_model,
    train_audio_classifier,
)
from transferkit.audio.registry import (
    AUDIO_ENCODERS,
    DEFAULT_AUDIO_ENCODER,
    audio_encoder_from_spec,
    create_audio_encoder,
    list_audio_encoders,
)
from transferkit.audio.speech import LICENCE_NOTE, SpeechEncoder
from transferkit.errors import AudioLoadError

__all__ = [
    "DIGIT_WORDS", "AudioDataset", "generate_espeak_digits", "read_audio_dataset",
    "tuxpaint_digits", "tuxpaint_language", "write_spoken_digits", "embed_audio", "embed_clips",
    "AudioEncoder", "LogmelEncoder", "MfccEncoder", "SpectrogramEncoder", "WaveletEncoder",
    "log_mel", "AudioIndex", "build_audio_index", "is_audio_index", "AUDIO_EXTENSIONS",
    "SAMPLE_RATE", "list_audio", "load_audio", "prepare_samples", "tone", "try_load_clips",
    "write_wav", "AudioModel", "is_audio_model", "train_audio_classifier", "AUDIO_ENCODERS",
    "DEFAULT_AUDIO_ENCODER", "audio_encoder_from_spec", "create_audio_encoder",
    "list_audio_encoders", "AudioLoadError", "LICENCE_NOTE", "SpeechEncoder",
    "write_spectrogram_images", "spectrogram_image", "advise_audio", "format_audio_advice",
]
