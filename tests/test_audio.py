"""Audio: decoding policy and bad files, encoders, classifiers with every head, index, CLI.

Real data only: numpy tones written to wav/flac, espeak-ng digits generated here, and the
human-spoken Tux Paint digits installed by Debian's tuxpaint-stamps-default.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from transferkit.audio import (
    AUDIO_ENCODERS,
    SAMPLE_RATE,
    AudioModel,
    audio_encoder_from_spec,
    build_audio_index,
    create_audio_encoder,
    generate_espeak_digits,
    load_audio,
    read_audio_dataset,
    tone,
    train_audio_classifier,
    try_load_clips,
    tuxpaint_digits,
    write_wav,
)
from transferkit.cli import app
from transferkit.errors import AudioLoadError, ImageLoadError, IncompatibleModelError
from transferkit.features import Embeddings
from transferkit.heads import list_heads

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.stdout + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def espeak_digits(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("espeak") / "digits"
    generate_espeak_digits(folder, voices=("en-us", "en-gb-x-rp", "en-029"),
                           variants=("", "+f2", "+m3"))
    return folder


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    """One clip of every kind the loader must refuse, beside two good ones."""
    folder = tmp_path_factory.mktemp("bad-audio")
    write_wav(folder / "good.wav", tone(440))
    sf.write(folder / "stereo_44k.flac", np.stack([tone(600, 1, 44_100),
                                                   np.zeros(44_100, np.float32)], axis=1),
             44_100)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.ogg").write_text("this is not audio")
    whole = (folder / "good.wav").read_bytes()
    (folder / "cut.wav").write_bytes(whole[: len(whole) // 3])
    write_wav(folder / "silent.wav", np.zeros(SAMPLE_RATE, np.float32))
    sf.write(folder / "long.wav", tone(300, 61, 8_000), 8_000)
    return folder


BAD_REASONS = {"empty.wav": "empty file (0 bytes)", "notes.ogg": "not readable audio",
               "cut.wav": "truncated", "silent.wav": "silent (peak amplitude",
               "long.wav": "1.0 min long; clips longer than 60 s are refused"}


def test_bad_files_are_one_line_each_and_the_batch_continues(bad_folder):
    paths = sorted(bad_folder.iterdir())
    good, clips, failures = try_load_clips(paths)
    assert sorted(p.name for p in good) == ["good.wav", "stereo_44k.flac"]
    reasons = {Path(p).name: r for p, r in failures}
    assert set(reasons) == set(BAD_REASONS)
    for name, reason in BAD_REASONS.items():
        assert reason in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name]
    with pytest.raises(AudioLoadError, match="empty.wav: empty file") as caught:
        load_audio(bad_folder / "empty.wav")
    assert isinstance(caught.value, ImageLoadError)  # batch loops skip both kinds


def test_resampled_mixed_down_and_padded(bad_folder, tmp_path):
    stereo = load_audio(bad_folder / "stereo_44k.flac")
    assert stereo.dtype == np.float32 and stereo.ndim == 1
    assert len(stereo) == pytest.approx(SAMPLE_RATE, abs=10)  # 1 s at 16 kHz
    assert np.abs(stereo).max() == pytest.approx(0.25, abs=0.02)  # mean of tone and silence
    spectrum = np.abs(np.fft.rfft(stereo))
    assert np.argmax(spectrum) * SAMPLE_RATE / len(stereo) == pytest.approx(600, abs=3)
    sf.write(tmp_path / "odd.wav", tone(500, 0.1, 7_919), 7_919)
    short = load_audio(tmp_path / "odd.wav")
    assert len(short) == SAMPLE_RATE // 2  # padded to 0.5 s
    sf.write(tmp_path / "low.wav", tone(100, 1, 2_000), 2_000)
    with pytest.raises(AudioLoadError, match="below 4000 Hz"):
        load_audio(tmp_path / "low.wav")


@pytest.mark.parametrize("name, dim", [("mfcc", 80), ("logmel", 128), ("wavelet", 32)])
def test_encoders_shape_determinism_and_pitch(name, dim):
    encoder = create_audio_encoder(name)
    clips = [tone(300), tone(300), tone(3000)]
    rows = encoder.transform(clips)
    assert rows.shape == (3, dim) and rows.dtype == np.float32 and np.isfinite(rows).all()
    np.testing.assert_array_equal(rows[0], rows[1])
    assert not np.allclose(rows[0], rows[2], atol=1e-3)
    spec = encoder.spec()
    assert spec["kind"] == "audio" and spec["sample_rate"] == SAMPLE_RATE
    assert audio_encoder_from_spec(spec).spec() == spec
    with pytest.raises(IncompatibleModelError, match="made by audio encoder"):
        audio_encoder_from_spec({**spec, "weights_id": "mfcc-0000"})


def test_registry_lists_the_encoders_and_refuses_options():
    assert {"mfcc", "logmel", "wavelet", "spectrogram"} <= set(AUDIO_ENCODERS.list())
    with pytest.raises(ValueError, match="n_mels"):
        create_audio_encoder("mfcc", bogus=1)


def test_spectrogram_through_an_imagenet_backbone():
    encoder = create_audio_encoder("spectrogram")
    image = encoder.image(tone(440))
    assert image.mode == "RGB" and image.size == (224, 224)
    rows = encoder.transform([tone(440), tone(440), tone(2500)])
    assert rows.shape == (3, 1280)
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-5)
    assert not np.allclose(rows[0], rows[2], atol=1e-3)
    spec = encoder.spec()
    assert spec["backbone"]["name"] == "efficientnet_lite0"
    assert spec["weights_id"].endswith(spec["backbone"]["weights_id"])


def test_every_head_learns_espeak_digits(espeak_digits):
    data = read_audio_dataset(espeak_digits)
    assert len(data.paths) == 90 and data.classes == [str(d) for d in range(10)]
    for head in list_heads():
        model = train_audio_classifier(data, "logmel", head, test_size=0.3, seed=0)
        assert model.metrics["accuracy"] > 0.3, (head, model.metrics)  # chance is 0.1


def test_audio_model_round_trip_and_evaluate_on_real_speech(espeak_digits, tmp_path):
    model = train_audio_classifier(espeak_digits, "mfcc", "logreg", test_size=0.2,
                                   output=tmp_path / "m")
    again = AudioModel.load(tmp_path / "m")
    clip = next((espeak_digits / "7").iterdir())
    assert model.predict_paths([clip])[0] == again.predict_paths([clip])[0]
    real = tuxpaint_digits()
    assert len(real.paths) == 20 and sorted(set(real.labels)) == [str(d) for d in range(10)]
    metrics = again.evaluate(real)
    assert metrics["n"] == 20 and metrics["chance"] == 0.1 and 0 <= metrics["accuracy"] <= 1


def test_csv_dataset_and_bad_clips_in_training(espeak_digits, bad_folder, tmp_path):
    rows = [(str(p), p.parent.name) for p in sorted(espeak_digits.rglob("*.wav"))]
    rows.append((str(bad_folder / "notes.ogg"), "3"))
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text("path,label\n" + "\n".join(f"{p},{label}" for p, label in rows))
    model = train_audio_classifier(csv_path, "wavelet", "random_forest", test_size=0.2)
    assert model.metrics["n_train"] + model.metrics["n_test"] == 90
    assert [Path(f["path"]).name for f in model.metrics["failures"]] == ["notes.ogg"]


def test_index_finds_the_same_clip_first(espeak_digits, tmp_path):
    index = build_audio_index(espeak_digits, "logmel", method="exact",
                              output=tmp_path / "a.tkindex")
    assert len(index) == 90
    query = sorted((espeak_digits / "4").iterdir())[0]
    rows, failures = index.search_paths([query], k=3)
    assert rows[0]["hits"][0]["path"] == str(query) and rows[0]["hits"][0]["score"] > 0.999
    assert not failures


# -- CLI -------------------------------------------------------------------------------------
def test_cli_embed_train_predict_evaluate_index_search(espeak_digits, bad_folder, tmp_path):
    result, out = invoke("embed", "--audio", espeak_digits, "--encoder", "mfcc",
                         "-o", tmp_path / "e.parquet")
    assert result.exit_code == 0, out
    emb = Embeddings.load(tmp_path / "e.parquet")
    assert emb.vectors.shape == (90, 80) and emb.spec["kind"] == "audio"
    assert sorted(set(emb.labels)) == [str(d) for d in range(10)]

    model = tmp_path / "model"
    result, out = invoke("train", espeak_digits, "--audio", "--strategy", "logreg", "-o", model)
    assert result.exit_code == 0 and "logmel + logreg: held-out accuracy" in out, out
    clip = sorted((espeak_digits / "2").iterdir())[0]
    result, out = invoke("predict", model, clip, bad_folder / "empty.wav", "--json")
    assert result.exit_code == 0, out
    payload = json.loads(result.stdout)
    assert payload["results"][0]["top_k"][0]["label"] == "2"
    assert payload["failures"] == [{"path": str(bad_folder / "empty.wav"),
                                    "reason": "empty file (0 bytes)"}]
    digits = tmp_path / "tux"
    result, out = invoke("data", "spoken-digits", digits)
    assert result.exit_code == 0 and "wrote 20 Tux Paint digit clips" in out, out
    result, out = invoke("evaluate", model, digits, "--json")
    assert result.exit_code == 0, out
    assert json.loads(result.stdout)["n"] == 20

    index = tmp_path / "a.tkindex"
    result, out = invoke("index", "build", "--audio", bad_folder, "--method", "exact",
                         "-o", index)
    assert result.exit_code == 0 and "indexed 2 clips with logmel" in out, out
    assert "skipped 5 unreadable file(s)" in out and "cut.wav: truncated" in out
    result, out = invoke("search", index, "--audio", bad_folder / "good.wav", "-k", "1",
                         "--json")
    assert result.exit_code == 0, out
    hit = json.loads(result.stdout)["results"][0]["hits"][0]
    assert hit["path"] == str(bad_folder / "good.wav")
    result, out = invoke("search", index, "--audio", bad_folder / "silent.wav")
    assert result.exit_code == 1 and "silent" in out and "Traceback" not in out


def test_speech_embedding_is_opt_in_and_transfers_to_real_voices(espeak_digits, tmp_path):
    from transferkit.audio import DEFAULT_AUDIO_ENCODER

    assert DEFAULT_AUDIO_ENCODER != "speech"
    encoder = create_audio_encoder("speech")
    assert encoder.transform([tone(440)]).shape == (1, 192)
    spec = encoder.spec()
    assert spec["package_version"] == "0.5.1" and "CC BY-NC-SA 4.0" in spec["licence"]
    model = tmp_path / "speech-model"
    result, out = invoke("train", espeak_digits, "--audio", "--encoder", "speech", "-o", model)
    assert result.exit_code == 0, out
    assert "note: the speech encoder uses Google's speech_embedding" in out
    # trained on synthetic espeak voices only, tested on the human Tux Paint recordings
    metrics = AudioModel.load(model).evaluate(tuxpaint_digits())
    assert metrics["accuracy"] >= 0.8, metrics


def test_transferkit_load_opens_audio_artefacts(espeak_digits, tmp_path):
    import transferkit

    train_audio_classifier(espeak_digits, "wavelet", "logreg", output=tmp_path / "m")
    build_audio_index(espeak_digits, "wavelet", method="exact", output=tmp_path / "a.tkindex")
    assert isinstance(transferkit.load(tmp_path / "m"), AudioModel)
    from transferkit.audio import AudioIndex

    assert len(transferkit.load(tmp_path / "a.tkindex")) == 90
    assert isinstance(transferkit.load(tmp_path / "a.tkindex"), AudioIndex)


def test_spectrogram_images_fine_tune_with_the_image_trainer(espeak_digits, bad_folder,
                                                              tmp_path):
    from PIL import Image

    from transferkit.train import fit

    result, out = invoke("data", "spectrograms", espeak_digits, tmp_path / "png", "--side", "64")
    assert result.exit_code == 0 and "wrote 90 spectrogram images" in out, out
    first = next((tmp_path / "png" / "0").iterdir())
    assert Image.open(first).size == (64, 64)
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(f"path,label\n{bad_folder / 'good.wav'},a\n{bad_folder / 'cut.wav'},b\n")
    result, out = invoke("data", "spectrograms", csv_path, tmp_path / "png-bad")
    assert result.exit_code == 0 and "cut.wav: truncated" in out
    model = fit(tmp_path / "png", strategy="finetune", image_size=64, epochs=1, seed=0)
    assert model.spec_["name"] == "efficientnet_lite0"


def test_advise_audio_recommends_an_encoder_or_more_data(espeak_digits, tmp_path):
    result, out = invoke("advise", espeak_digits, "--audio", "--folds", "3", "--json")
    assert result.exit_code == 0, out
    advice = json.loads(result.stdout)
    # 9 clips per digit: below the 10-per-class floor, whatever the probes say
    assert advice["verdict"] == "collect more data" and "has 9 clips" in advice["reason"]
    assert {r["encoder"] for r in advice["encoders"]} == {"mfcc", "logmel", "wavelet"}
    assert all(r["probe_accuracy"] > 0.5 for r in advice["encoders"])  # chance is 0.1
    bigger = tmp_path / "bigger"
    generate_espeak_digits(bigger, voices=("en-us", "en-gb-x-rp"), variants=("", "+f2", "+m3"),
                           speeds=(130, 170))
    from transferkit.audio import advise_audio

    advice = advise_audio(bigger, folds=3)
    assert advice["verdict"].startswith("train a head on "), advice


def test_espeak_repeats_are_not_kept(tmp_path):
    # espeak-ng's plain "en-gb" ignores variants: +f2 renders the same bytes
    made = generate_espeak_digits(tmp_path / "d", voices=("en-gb",), variants=("", "+f2"))
    assert len(made.paths) == 10 and len(list((tmp_path / "d").rglob("*.wav"))) == 10
    assert not list((tmp_path / "d").rglob("*.tmp"))
