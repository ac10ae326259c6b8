"""Transfer-learning commands: train, predict, evaluate, advise."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from transferkit.cli._common import (
    MAX_PIXELS,
    console,
    engine_option,
    err_console,
    friendly_errors,
    precision_option,
    print_runtime,
    print_topk_results,
    report_failures,
    write_and_report_failures,
)
from transferkit.train.config import FinetuneConfig


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("evaluate")(evaluate)
    app.command("advise")(advise)
    app.command("ensemble")(ensemble)


def _parse_params(items: list[str] | None) -> dict:
    params = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--head-param expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _training_options() -> list[inspect.Parameter]:
    """One option per ``FinetuneConfig`` field, with its default and help: adding a field
    adds the option. Booleans get ``--x/--no-x``."""
    types = typing.get_type_hints(FinetuneConfig)
    options = []
    for field in dataclasses.fields(FinetuneConfig):
        if field.default is dataclasses.MISSING:
            raise TypeError(f"FinetuneConfig.{field.name} needs a plain default to be an option")
        flag = "--" + field.name.replace("_", "-")
        names = [f"{flag}/--no-{flag[2:]}"] if types[field.name] is bool else [flag]
        option = typer.Option(field.default, *names, help=field.metadata.get("help"))
        options.append(inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                         default=option, annotation=types[field.name]))
    return options


def _with_training_options(before: str) -> Callable[[Callable], Callable]:
    """Show typer the training options in place of ``**training_options``, listed before the
    parameter ``before``; their values arrive in ``training_options``."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        at = next(i for i, p in enumerate(fixed) if p.name == before)
        command.__signature__ = signature.replace(
            parameters=fixed[:at] + _training_options() + fixed[at:])
        return command

    return decorate


@_with_training_options(before="text")
@friendly_errors
def train(
    data: Path = typer.Argument(..., help="Folder with one sub-folder per class (optionally "
                                          "inside train/ val/ test/), or a CSV "
                                          "path,label[,split]."),
    output: Path = typer.Option(Path("out/model"), "--output", "-o", help="Model directory."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    strategy: str = typer.Option("logreg", "--strategy", "-s",
                                 help="linear, mlp, logreg, random_forest, gradient_boosting, "
                                      "finetune or scratch."),
    ensemble: str | None = typer.Option(None, help="Comma-separated backbones, e.g. "
                                                   "efficientnet_lite0,efficientnet_lite1."),
    ensemble_mode: str = typer.Option("concat", help="concat (features) or average (probs)."),
    image_size: int | None = typer.Option(None, help="Input resolution (e.g. 64 for 28px data)."),
    val_fraction: float = typer.Option(0.15, help="Validation share when no split is given."),
    test_fraction: float = typer.Option(0.15, help="Test share when no split is given."),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(32, min=1),
    head_param: list[str] | None = typer.Option(None, "--head-param",
                                                help="KEY=VALUE for the head, repeatable."),
    text: bool = typer.Option(False, "--text", help="DATA is a CSV of texts and labels: train "
                                                    "a text classifier (head = --strategy)."),
    encoder: str | None = typer.Option(None, "--encoder", help="With --text: minilm "
                                       "(default), tfidf, glove or glove-idf; with --audio: "
                                       "mfcc, logmel (default), wavelet or spectrogram."),
    audio: bool = typer.Option(False, "--audio", help="DATA holds audio clips (class "
                                                      "sub-folders or CSV path,label): train "
                                                      "an audio classifier (head = --strategy)."),
    text_column: str = typer.Option("text", help="With --text: CSV column of the texts."),
    label_column: str = typer.Option("label", help="With --text: CSV column of the labels."),
    max_pixels: int = MAX_PIXELS,
    **training_options: Any,
) -> None:
    """Train a classifier on labelled images (or texts with --text); writes model + report."""
    if text:
        from transferkit.cli.text import run_train_text

        run_train_text(data, output, encoder or "minilm", strategy, text_column, label_column,
                       test_size=test_fraction, seed=seed, head_params=_parse_params(head_param))
        return
    if audio:
        from transferkit.cli.audio import run_train_audio

        run_train_audio(data, output, encoder, strategy, test_fraction, seed,
                        _parse_params(head_param))
        return
    from transferkit.train import BODY_STRATEGIES, TrainingInterrupted, fit, format_metrics

    knobs = training_options if strategy in BODY_STRATEGIES else {}
    try:
        model = fit(data, backbone=backbone, strategy=strategy, output=output,
                    image_size=image_size, val_fraction=val_fraction,
                    test_fraction=test_fraction, seed=seed, batch_size=batch_size,
                    head_params=_parse_params(head_param), ensemble=ensemble,
                    ensemble_mode=ensemble_mode, max_pixels=max_pixels, **knobs)
    except TrainingInterrupted as exc:
        err_console.print(f"[yellow]{exc}[/yellow]", highlight=False)
        raise typer.Exit(3) from None
    report = json.loads((output / "report" / "report.json").read_text())
    console.print(f"[bold]{strategy}[/bold] on {model.spec_['name']}: "
                  f"{report.get('split', 'test')} split", highlight=False)
    console.print(format_metrics(report), highlight=False, markup=False)
    console.print(f"model saved to {output} (report in {output / 'report'})", highlight=False)
    write_and_report_failures(output, [(f["path"], f["reason"])
                                       for f in model.manifest.get("failures", [])],
                              model.manifest.get("data", {}).get("ignored", []))


@friendly_errors
def predict(
    model_dir: Path = typer.Argument(..., help="Model directory written by `train`."),
    images: list[Path] | None = typer.Argument(None, help="Image files or folders (for a text "
                                                          "model: .txt/.csv files)."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    text: list[str] | None = typer.Option(None, "--text", help="Text to classify with a text "
                                                               "model (repeatable)."),
    max_pixels: int = MAX_PIXELS,
    engine: str = engine_option(more=" Or ray."),
    precision: str = precision_option(),
) -> None:
    """Top-k classes with probabilities for each image or text (bad files skipped, listed)."""
    from transferkit.audio import is_audio_model
    from transferkit.text import is_text_model

    if is_audio_model(model_dir):
        from transferkit.cli.audio import run_predict_audio

        return run_predict_audio(model_dir, images or [], top_k, as_json)
    if text or is_text_model(model_dir):
        from transferkit.cli.text import run_predict_text

        return run_predict_text(model_dir, text, images, top_k, as_json)
    if not images:
        raise ValueError("predict: give image files or folders (or --text with a text model)")
    from transferkit.data import scan_images
    from transferkit.train import load_model

    model = load_model(model_dir)
    scan = scan_images(images)
    engine = _announce_engine(model, len(scan.images), engine, precision)
    results, failures = model.predict_paths(scan.images, top_k=top_k, max_pixels=max_pixels,
                                            engine=engine, precision=precision)
    print_topk_results(results, failures, as_json, scan.ignored)


def _announce_engine(model, n_images: int, engine: str, precision: str) -> str:
    """Resolve ``auto`` once for the whole job and say what will run."""
    from transferkit.runtime import choose_engine, choose_precision

    engine = choose_engine(engine, model.backbones[0], n_images, precision)
    print_runtime({"engine": engine, "precision": choose_precision(engine, precision)})
    return engine


@friendly_errors
def evaluate(
    model_dir: Path = typer.Argument(..., help="Model directory written by `train`."),
    data: Path = typer.Argument(..., help="Labelled folder or CSV to evaluate on (all of it)."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Write report.json + confusion_matrix.png here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    max_pixels: int = MAX_PIXELS,
    engine: str = engine_option(more=" Or ray."),
    precision: str = precision_option(),
) -> None:
    """Accuracy, per-class precision/recall and confusion matrix of a model on labelled data."""
    from transferkit.audio import is_audio_model
    from transferkit.train import format_metrics, load_model

    if is_audio_model(model_dir):
        from transferkit.cli.audio import run_evaluate_audio

        return run_evaluate_audio(model_dir, data, as_json)
    model = load_model(model_dir)
    labelled = model.labelled(data)
    engine = _announce_engine(model, len(labelled.paths), engine, precision)
    metrics = model.evaluate(labelled, output=output, max_pixels=max_pixels, engine=engine,
                             precision=precision)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        console.print(format_metrics(metrics), highlight=False, markup=False)
        if output:
            console.print(f"report written to {output}", highlight=False)
    failures = [(f["path"], f["reason"]) for f in metrics.get("failures", [])]
    if output:
        write_and_report_failures(output, failures)
    else:
        report_failures(failures)


@friendly_errors
def advise(
    data: Path = typer.Argument(..., help="Labelled folder or CSV."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    image_size: int | None = typer.Option(None, help="Input resolution for the measurements."),
    folds: int = typer.Option(5, min=2, help="Cross-validation folds of the linear probe."),
    as_json: bool = typer.Option(False, "--json", help="Print the measurements as JSON."),
    audio: bool = typer.Option(False, "--audio", help="DATA holds audio clips: compare the "
                                                      "audio encoders by a probe instead."),
) -> None:
    """Recommend train-head / fine-tune / from-scratch / collect-more-data, with the numbers."""
    if audio:
        from transferkit.cli.audio import run_advise_audio

        return run_advise_audio(data, folds, as_json)
    from transferkit.train import advise as run_advise
    from transferkit.train import format_advice

    result = run_advise(data, backbone=backbone, image_size=image_size, folds=folds)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        console.print(format_advice(result), highlight=False, markup=False)
    report_failures([(f["path"], f["reason"]) for f in result.get("failures", [])])


@friendly_errors
def ensemble(
    models: list[Path] = typer.Argument(..., help="Two or more model directories from `train`."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write the ensemble."),
    data: Path | None = typer.Option(None, "--data", help="Labelled folder or CSV: evaluate "
                                     "each member and the ensemble on it, side by side, and "
                                     "keep the ensemble's report."),
) -> None:
    """Average the class probabilities of trained models (fine-tuned ones too) into one."""
    import tempfile

    from transferkit.train import ensemble_models, load_model

    members = [load_model(m) for m in models]
    joined = ensemble_models(members)
    with tempfile.TemporaryDirectory() as tmp:
        report_dir = None
        if data is not None:
            report_dir = Path(tmp) / "report"
            member_metrics, metrics = joined.evaluate_members(data, output=report_dir)
            names = [str(m) for m in models]
            width = max(len(name) for name in names + ["ensemble"])
            for name, scores in zip(names, member_metrics):
                console.print(f"{name:<{width}}  accuracy {_rate(scores['accuracy'])}",
                              highlight=False, markup=False)
            console.print(f"{'ensemble':<{width}}  accuracy {_rate(metrics['accuracy'])}  "
                          f"(on {metrics['n']} images of {data})", highlight=False,
                          markup=False)
            joined.manifest["metrics"] = {k: v for k, v in metrics.items() if k != "failures"}
        joined.save(output, report_dir=report_dir)
    console.print(f"ensemble of {len(members)} models ({len(joined.heads)} heads, "
                  f"{', '.join(b.name for b in joined.backbones)}) saved to {output}",
                  highlight=False, markup=False)


def _rate(value: float | None) -> str:
    return "n/a (no readable image)" if value is None else f"{value:.3f}"
