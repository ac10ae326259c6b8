"""Audio pieces of the CLI: `audio-encoders`, `data spoken-digits`, and the ``--audio``
branches of ``embed``, ``index build``, ``search``, ``train``, ``predict`` and ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from transferkit.cli._common import console, friendly_errors, print_topk_results, report_failures

ENCODER_HELP = "mfcc, logmel (default), wavelet, spectrogram or speech (opt-in licence)"
data_app = typer.Typer(no_args_is_help=True, help="Write demo datasets.")


def register(app: typer.Typer) -> None:
    app.command("audio-encoders")(audio_encoders)
    app.add_typer(data_app, name="data")


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _encoder(name: str | None):
    from transferkit.audio import DEFAULT_AUDIO_ENCODER, create_audio_encoder

    encoder = create_audio_encoder(name or DEFAULT_AUDIO_ENCODER)
    note = encoder.licence_note()
    if note:
        _say(f"note: {note}")
    return encoder


@friendly_errors
def audio_encoders() -> None:
    """List audio encoders usable with --audio (embed, index build, train)."""
    from transferkit.audio import AUDIO_ENCODERS

    for entry in AUDIO_ENCODERS.describe():
        console.print(f"[bold]{entry.name}[/bold]  {entry.description}")


@data_app.command("spoken-digits")
@friendly_errors
def spoken_digits(
    output: Path = typer.Argument(..., help="Folder to write (one sub-folder per digit)."),
    all_languages: bool = typer.Option(False, "--all-languages",
                                       help="All 22 Tux Paint language sets, not English only."),
    espeak: Path | None = typer.Option(None, "--espeak", help="Also generate espeak-ng digits "
                                       "(several voices) into this folder."),
) -> None:
    """Real spoken digits from Tux Paint (Debian tuxpaint-stamps-default) as class folders."""
    from transferkit.audio import generate_espeak_digits, write_spoken_digits

    real = write_spoken_digits(output, None if all_languages else ("en", "en_GB"))
    _say(f"wrote {len(real.paths)} Tux Paint digit clips ({len(real.classes)} classes) to "
         f"{output}")
    if espeak is not None:
        made = generate_espeak_digits(espeak)
        _say(f"wrote {len(made.paths)} espeak-ng digit clips to {espeak}")


@data_app.command("spectrograms")
@friendly_errors
def spectrograms(
    data: Path = typer.Argument(..., help="Audio class folders or CSV path,label."),
    output: Path = typer.Argument(..., help="Folder of PNGs to write, one sub-folder per class."),
    side: int = typer.Option(224, help="Image side in pixels."),
) -> None:
    """Log-mel pictures of labelled clips: then `train OUT --strategy finetune` fine-tunes an
    ImageNet backbone on sounds with every image option."""
    from transferkit.audio import write_spectrogram_images

    written, failures = write_spectrogram_images(data, output, side=side)
    _say(f"wrote {len(written)} spectrogram images to {output}")
    report_failures(failures)


def run_embed_audio(source: Path, output: Path, encoder: str | None) -> None:
    """`embed --audio FOLDER -o X.parquet`: class sub-folder names become labels."""
    from transferkit.audio import embed_audio

    emb = embed_audio(source, _encoder(encoder))
    emb.save(output)
    _say(f"wrote {len(emb)} {emb.spec['name']} audio embeddings of dim {emb.dim} to {output}")
    report_failures(emb.failures)


def run_index_build_audio(source: Path, output: Path, encoder: str | None,
                          metric: str = "cosine", method: str = "hnsw", **params) -> None:
    from transferkit.audio import build_audio_index

    index = build_audio_index(source, _encoder(encoder), metric=metric, method=method,
                              output=output, **params)
    _say(f"indexed {len(index)} clips with {index.spec['name']} (dim "
         f"{index.spec['num_features']}, {method}, {metric}) -> {output}")
    report_failures(index.failures)


def run_search_audio(index_path: Path, queries: list[Path], k: int, as_json: bool) -> None:
    from transferkit.audio import AudioIndex

    index = AudioIndex.load(index_path)
    rows, failures = index.search_paths(queries, k)
    if as_json:
        print(json.dumps({"index": str(index_path), "model": index.spec.get("name"),
                          "results": rows, "failures": [{"path": p, "reason": r}
                                                        for p, r in failures]}, indent=2))
    else:
        for row in rows:
            _say(row["query"])
            for rank, hit in enumerate(row["hits"], 1):
                _say(f"  {rank}. {hit['score']:.3f}  [{hit['id']}] {hit['path']}")
    report_failures(failures)
    if not rows:
        raise typer.Exit(1)


def run_train_audio(data: Path, output: Path, encoder: str | None, head: str,
                    test_size: float, seed: int, head_params: dict | None) -> None:
    from transferkit.audio import train_audio_classifier

    model = train_audio_classifier(data, _encoder(encoder), head, head_params=head_params,
                                   test_size=test_size, seed=seed, output=output)
    m = model.metrics
    if "accuracy" in m:
        _say(f"{model.encoder.name} + {head}: held-out accuracy {m['accuracy']:.3f} (macro-F1 "
             f"{m['macro_f1']:.3f}, chance {m['chance']:.3f}, majority {m['majority']:.3f}) on "
             f"{m['n_test']} clips, {len(model.classes)} classes")
    _say(f"saved audio model to {output}")
    report_failures([(f["path"], f["reason"]) for f in m.get("failures", [])])


def run_predict_audio(model_dir: Path, files: list[Path], top_k: int, as_json: bool) -> None:
    from transferkit.audio import AudioModel, list_audio

    if not files:
        raise ValueError("predict: give audio files or folders for an audio model")
    model = AudioModel.load(model_dir)
    note = model.encoder.licence_note()
    if note and not as_json:
        _say(f"note: {note}")
    paths = [p for item in files for p in list_audio(item)]
    results, failures = model.predict_paths(paths, top_k)
    print_topk_results(results, failures, as_json)


def run_evaluate_audio(model_dir: Path, data: Path, as_json: bool) -> None:
    from transferkit.audio import AudioModel

    metrics = AudioModel.load(model_dir).evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        _say(f"accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}  (chance "
             f"{metrics['chance']:.3f}, majority {metrics['majority']:.3f}) on "
             f"{metrics['n']} clips of {data}")
    report_failures([(f["path"], f["reason"]) for f in metrics["failures"]])


def run_advise_audio(data: Path, folds: int, as_json: bool) -> None:
    """`advise DATA --audio`: probe every unrestricted encoder, recommend one (or more data)."""
    from transferkit.audio import advise_audio, format_audio_advice

    advice = advise_audio(data, folds=folds)
    if as_json:
        print(json.dumps(advice, indent=2))
    else:
        _say(format_audio_advice(advice))
    report_failures([(f["path"], f["reason"]) for f in advice["failures"]])
