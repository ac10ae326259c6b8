"""The knobs of training through the body, in a module light enough for the CLI to read at
start-up (no torch): ``transferkit train`` builds one option per field from it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from transferkit.errors import InvalidOptionError


def _knob(default: Any, *, help: str) -> Any:
    """A training knob; ``help`` is what ``transferkit train --help`` shows for its option."""
    return field(default=default, metadata={"help": help})


@dataclass
class FinetuneConfig:
    """Knobs for ``finetune`` / ``scratch``: keyword arguments of ``fit`` and, one option per
    field with the same default and help, of ``transferkit train``."""

    epochs: int = _knob(8, help="finetune/scratch: body epochs (phase 2 of finetune, every "
                                "epoch of scratch).")
    head_epochs: int = _knob(40, help="finetune: phase-1 epochs of the linear head on cached "
                                      "frozen features.")
    lr: float = _knob(3e-4, help="finetune/scratch: head learning rate in phase 2 (every "
                                 "layer for scratch).")
    body_lr: float = _knob(1e-4, help="finetune: learning rate of the unfrozen blocks; keep "
                                      "it below --lr.")
    unfreeze_blocks: int = _knob(2, help="finetune: last N blocks to train (-1 all).")
    weight_decay: float = _knob(1e-4, help="finetune/scratch: AdamW weight decay.")
    label_smoothing: float = _knob(0.1, help="finetune/scratch: label smoothing of the loss "
                                             "(phase-1 head too).")
    dropout: float = _knob(0.2, help="finetune/scratch: dropout before the classifier.")
    augment: bool = _knob(True, help="finetune/scratch: flips, resized crops, colour jitter, "
                                     "small rotations; --no-augment caches the frozen trunk's "
                                     "output (much faster).")
    hflip: bool = _knob(True, help="With augmentation: random horizontal flips (turn off when "
                                   "mirrored images mean something else).")
    patience: int = _knob(3, help="Early stopping: epochs without better validation accuracy.")
    freeze_bn: bool = _knob(True, help="Keep BatchNorm statistics fixed (finetune).")
    resume: bool = _knob(False, help="Continue from OUTPUT.ckpt after an interruption.")
    stop_after_epochs: int | None = _knob(None, help="Stop (resumably) after N epochs.")
    max_steps_per_epoch: int | None = _knob(None, help="Cap batches per epoch.")
    keep_checkpoint: bool = _knob(False, help="Keep OUTPUT.ckpt after the model is saved.")

    @classmethod
    def from_knobs(cls, **knobs: Any) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise InvalidOptionError(f"unknown training option(s) {unknown}; known: "
                                     f"{sorted(known)}")
        config = cls(**knobs)
        if config.epochs < 0 or config.head_epochs < 0:
            raise InvalidOptionError("epochs must be >= 0")
        return config
