"""Spoken digits: which audio encoder transfers from synthetic voices to unseen and real ones.

Run:  .venv/bin/python benchmarks/bench_audio.py            (about a minute on 2 idle cores)
      .venv/bin/python benchmarks/bench_audio.py --quick    (2 train voices, no spectrogram)

Train: digits 0-9 spoken by espeak-ng (``--train-voices`` x ``--variants`` x ``--train-speeds``,
generated here).
Test sets, none seen in training:
  * ``espeak-unseen``: the same digits from other espeak-ng voices (``--test-voices``);
  * ``flite``: flite's voices, when the ``flite`` binary is installed (row skipped otherwise);
  * ``tuxpaint-en``: the human recordings in Debian's tuxpaint-stamps-default (English, 20);
  * ``tuxpaint-all``: every Tux Paint language set (210 clips, 22 languages). Digits in other
    languages are other words, and each set is close to one speaker, so this row measures
    how far word identity survives a language change, not speaker independence.
Rows: every encoder in ``--encoders`` with each head in ``--heads``; ``spectrogram`` +
``finetune``: the same log-mel pictures (``data spectrograms``) fine-tuned through Lite0 by the
image trainer (``--finetune-epochs``, ``--finetune-size`` px; 0 epochs skips it); ``chance`` and
``majority`` (the training set's most common class) in the same run. Speed: embedding
milliseconds per clip (decoding excluded), wall-clock on a possibly shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TRANSFERKIT_QUIET", "1")

TRAIN_VOICES = ("en-us", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd")
TEST_VOICES = ("en-gb-scotland", "en-gb-x-gbclan")
VARIANTS = ("", "+m3", "+f2", "+f4", "+m7", "+croak")
ENCODERS = ("mfcc", "logmel", "wavelet", "spectrogram", "speech")
FLITE_VOICES = ("kal", "kal16", "slt", "rms", "awb")


def flite_digits(output: Path, voices: tuple[str, ...] = FLITE_VOICES):
    """Digits from flite's built-in voices, or None without the binary."""
    from transferkit.audio import DIGIT_WORDS, AudioDataset

    binary = shutil.which("flite")
    if binary is None:
        return None
    paths, labels = [], []
    for digit, word in enumerate(DIGIT_WORDS):
        for voice in voices:
            target = output / str(digit) / f"{voice}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run([binary, "-voice", voice, "-t", word, "-o", str(target)],
                                  capture_output=True)
            if done.returncode == 0 and target.exists():
                paths.append(target)
                labels.append(str(digit))
    return AudioDataset(paths, labels) if paths else None


def make_sets(args: argparse.Namespace, workdir: Path) -> dict:
    from transferkit.audio import generate_espeak_digits, tuxpaint_digits

    sets = {"train": generate_espeak_digits(workdir / "train", args.train_voices,
                                            args.variants, args.train_speeds),
            "espeak-unseen": generate_espeak_digits(workdir / "test", args.test_voices,
                                                    args.variants)}
    flite = flite_digits(workdir / "flite")
    if flite is not None:
        sets["flite"] = flite
    sets["tuxpaint-en"] = tuxpaint_digits()
    sets["tuxpaint-all"] = tuxpaint_digits(None)
    return sets


def embed_sets(name: str, sets: dict) -> tuple[dict, float]:
    """{set: (vectors, labels)} for one encoder, and its embedding ms per clip."""
    from transferkit.audio import create_audio_encoder, try_load_clips

    encoder = create_audio_encoder(name)
    encoder.transform([np.zeros(16_000, np.float32) + 1e-3])  # load models outside the timer
    out, seconds, clips_done = {}, 0.0, 0
    for set_name, data in sets.items():
        good, clips, _ = try_load_clips(data.paths)
        label_of = dict(zip(map(str, data.paths), data.labels))
        started = time.perf_counter()
        vectors = encoder.transform(clips)
        seconds += time.perf_counter() - started
        clips_done += len(clips)
        out[set_name] = (vectors, [label_of[str(p)] for p in good])
    return out, 1000 * seconds / max(clips_done, 1)


def run(args: argparse.Namespace) -> dict:
    from transferkit.audio.model import score
    from transferkit.heads import make_head

    classes = [str(d) for d in range(10)]
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(args, Path(tmp))
        print("sets: " + ", ".join(f"{k} {len(v.paths)}" for k, v in sets.items()), flush=True)
        rows = []
        train_labels = np.asarray([classes.index(x) for x in sets["train"].labels])
        majority = int(np.bincount(train_labels, minlength=10).argmax())
        for set_name, data in list(sets.items())[1:]:
            y = np.asarray([classes.index(x) for x in data.labels])
            rows.append({"encoder": "majority", "head": "-", "set": set_name,
                         **score(y, np.full(len(y), majority), 10)})
            rows.append({"encoder": "chance", "head": "-", "set": set_name,
                         "accuracy": 0.1, "n": len(y)})
        for name in args.encoders:
            try:
                vectors, ms_per_clip = embed_sets(name, sets)
            except FileNotFoundError as exc:  # the opt-in speech model not installed
                print(f"  {name}: skipped ({exc})")
                continue
            print(f"  embedded with {name:<12} {ms_per_clip:7.1f} ms/clip", flush=True)
            x_train, y_train = vectors["train"]
            y_train = np.asarray([classes.index(x) for x in y_train])
            for head in args.heads:
                model = make_head(head).fit(x_train, y_train)
                for set_name, (x, labels) in list(vectors.items())[1:]:
                    y = np.asarray([classes.index(x) for x in labels])
                    rows.append({"encoder": name, "head": head, "set": set_name,
                                 "ms_per_clip": ms_per_clip, "dim": int(x_train.shape[1]),
                                 **score(y, model.predict(x), 10), "n": len(y)})
        if args.finetune_epochs:
            rows += finetune_rows(sets, Path(tmp), args)
    print_table(rows)
    return {"train_voices": list(args.train_voices), "train_speeds": list(args.train_speeds),
            "test_voices": list(args.test_voices),
            "variants": list(args.variants), "rows": rows}


def finetune_rows(sets: dict, workdir: Path, args: argparse.Namespace) -> list[dict]:
    """Fine-tune Lite0 on the training set's spectrogram PNGs; score every test set's PNGs."""
    from transferkit.audio import write_spectrogram_images
    from transferkit.train import fit

    folders = {}
    for set_name, data in sets.items():
        folders[set_name] = workdir / "png" / set_name
        write_spectrogram_images(data, folders[set_name], side=args.finetune_size)
    started = time.perf_counter()
    model = fit(folders["train"], strategy="finetune", image_size=args.finetune_size,
                epochs=args.finetune_epochs, seed=0, val_fraction=0.15, test_fraction=0.0)
    print(f"  fine-tuned spectrogram Lite0 in {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for set_name, folder in list(folders.items())[1:]:
        metrics = model.evaluate(folder)
        rows.append({"encoder": "spectrogram", "head": "finetune", "set": set_name,
                     "accuracy": float(metrics["accuracy"]), "n": int(metrics.get("n", 0))})
    return rows


def print_table(rows: list[dict]) -> None:
    sets = list(dict.fromkeys(r["set"] for r in rows))
    keys = list(dict.fromkeys((r["encoder"], r["head"]) for r in rows))
    header = f"{'encoder':<14}{'head':<20}" + "".join(f"{s:>15}" for s in sets) + "   ms/clip"
    print("\nAccuracy on digits never heard in training (trained on espeak-ng voices)")
    print(header)
    print("-" * len(header))
    for encoder, head in keys:
        cells, speed = [], ""
        for s in sets:
            row = next((r for r in rows if (r["encoder"], r["head"], r["set"]) ==
                        (encoder, head, s)), None)
            cells.append(f"{row['accuracy']:.3f}" if row else "-")
            if row and "ms_per_clip" in row:
                speed = f"{row['ms_per_clip']:9.1f}"
        print(f"{encoder:<14}{head:<20}" + "".join(f"{c:>15}" for c in cells) + speed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 train voices, 2 variants, no spectrogram")
    parser.add_argument("--train-voices", nargs="*", default=None)
    parser.add_argument("--test-voices", nargs="*", default=None)
    parser.add_argument("--variants", nargs="*", default=None,
                        help="espeak-ng voice variants ('' = plain, +f2, +m3, ...)")
    parser.add_argument("--train-speeds", nargs="*", type=int, default=[150],
                        help="espeak-ng words per minute for the training clips (test: 150)")
    parser.add_argument("--encoders", nargs="*", default=None)
    parser.add_argument("--heads", nargs="*", default=["logreg"])
    parser.add_argument("--finetune-epochs", type=int, default=None,
                        help="spectrogram fine-tune epochs (default 6; 0 with --quick)")
    parser.add_argument("--finetune-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("out/bench-audio"))
    args = parser.parse_args()
    args.train_voices = tuple(args.train_voices or (TRAIN_VOICES[:2] if args.quick
                                                    else TRAIN_VOICES))
    args.test_voices = tuple(args.test_voices or (TEST_VOICES[:1] if args.quick
                                                  else TEST_VOICES))
    args.variants = tuple(args.variants if args.variants is not None else
                          (VARIANTS[:2] if args.quick else VARIANTS))
    args.encoders = tuple(args.encoders or [e for e in ENCODERS
                                            if not (args.quick and e == "spectrogram")])
    if args.finetune_epochs is None:
        args.finetune_epochs = 0 if args.quick else 6
    result = run(args)
    from transferkit.utils import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "bench_audio.json", json.dumps(result, indent=2))
    print(f"\nrows: {args.out / 'bench_audio.json'}")


if __name__ == "__main__":
    main()
