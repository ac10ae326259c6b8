"""``transferkit export``: a backbone or a trained transfer model as one ONNX file."""

from __future__ import annotations

from pathlib import Path

import typer

from transferkit.cli._common import console, friendly_errors


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def _is_transfer_model(source: str) -> bool:
    return (Path(source) / "manifest.json").is_file()


@friendly_errors
def export(
    source: str = typer.Argument(..., help="Backbone name, saved backbone folder, or a model "
                                           "folder written by `transferkit train`."),
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write."),
    checkpoint: Path | None = typer.Option(None, help="Local weights for a timm architecture."),
    image_size: int | None = typer.Option(None, help="Export at this input resolution."),
    check: bool = typer.Option(True, help="Run the exported file once against PyTorch."),
) -> None:
    """Export to ONNX (embedding + logits outputs; spec and classes in the file's metadata)."""
    import numpy as np
    import torch

    from transferkit.runtime import OnnxBackbone, export_backbone

    if _is_transfer_model(source):
        from transferkit.train import TransferModel, export_transfer_model

        model = TransferModel.load(source)
        backbone = model.backbones[0]
        path, head_included = export_transfer_model(model, output)
        what = "backbone + head" if head_included else "backbone only"
    else:
        from transferkit.backbones import create

        backbone = create(source, checkpoint=checkpoint, image_size=image_size)
        path, what = export_backbone(backbone, output), "backbone"
    session = OnnxBackbone(path)
    console.print(f"wrote {path} ({what}; outputs: {', '.join(session.output_names)}; input "
                  f"(N, 3, {backbone.preprocessing.input_size}, "
                  f"{backbone.preprocessing.input_size}) normalised float32)", highlight=False)
    if session.metadata.get("note"):
        console.print(f"note: {session.metadata['note']}", highlight=False)
    if check:
        size = backbone.preprocessing.input_size
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = backbone.eval().embed(x).float().numpy()
        got = session.embed(x).numpy()
        err = float(np.abs(got - expected).max() / max(1e-6, np.abs(expected).max()))
        if err > 1e-3:
            raise ValueError(f"{path}: exported model disagrees with PyTorch (relative error "
                             f"{err:.1e})")
        console.print(f"check: embeddings match PyTorch (max relative error {err:.1e})",
                      highlight=False)
