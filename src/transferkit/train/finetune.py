"""Training through the body: ``finetune`` (pretrained) and ``scratch`` (random init).

Fine-tuning runs in two phases:

1. **head** - the body is frozen, its features are computed once (cached) and a linear head
   is trained on them. A new random head would otherwise send large, noisy gradients into
   pretrained weights in the first steps.
2. **body** - the last ``unfreeze_blocks`` blocks of ``Backbone.block_names()`` plus the
   layers after them are unfrozen and trained together with the head, the body at
   ``body_lr`` (smaller) and the head at ``lr``, cosine-decayed, with augmentation.

BatchNorm policy (``freeze_bn=True``, the default): every BN layer of a fine-tuned body stays
in inference mode - running mean/variance are never updated - so the features the phase-1
head was fitted on do not shift under it; in unfrozen blocks BN's affine weights (gamma,
beta) still train. Updating running statistics from small, augmented, off-distribution
batches was measured to wreck a pretrained body within one epoch (fashion-mini: validation
accuracy 50% -> 15%). ``freeze_bn=False`` lets BN in unfrozen blocks use batch statistics
and update running averages (large data sets, batches >= 32); BN in frozen blocks is in
inference mode either way. ``scratch`` always trains every BN layer normally.

Without augmentation the frozen trunk's output is computed once and body epochs only run the
unfrozen top blocks, for every layout ``transferkit.backbones.split_trunk`` knows.

Checkpoints: after every epoch ``<output>.ckpt/`` is replaced atomically with weights,
best weights, AdamW state tensors and RNG state (safetensors) plus ``state.json``
(epoch, history, early-stopping counters, config). ``resume=True`` continues exactly where
the last completed epoch ended; nothing is pickled (see ``_checkpoint``).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from transferkit.backbones import (
    Backbone,
    TrunkSplit,
    classifier_name,
    create,
    split_trunk,
    state_dict_id,
)
from transferkit.data import DEFAULT_MAX_PIXELS
from transferkit.errors import TrainingInterrupted
from transferkit.features import embed_images
from transferkit.heads import LinearHead
from transferkit.train._checkpoint import (
    Checkpoint,
    checkpoint_dir,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from transferkit.train._images import (
    ImageList,
    Part,
    Replayable,
    Transform,
    image_batches,
    load_parts,
    tensor_batches,
    top_embeddings,
    trunk_outputs,
)
from transferkit.train.config import FinetuneConfig
from transferkit.train.data import LabelledImages, Split
from transferkit.train.model import TransferModel
from transferkit.train.report import classification_metrics, split_predictions, write_report
from transferkit.utils import progress


class FinetuneNet(nn.Module):
    """Backbone embedding -> dropout -> linear classifier."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone.embed(x)))


# -- what to train ----------------------------------------------------------------------------

def trainable_body_parameters(backbone: Backbone, unfreeze_blocks: int) -> list[str]:
    """Parameter names of the last ``unfreeze_blocks`` blocks and every layer after them."""
    names = [n for n, _ in backbone.model.named_parameters()]
    classifier = classifier_name(backbone.model) + "."
    if unfreeze_blocks < 0:
        return [n for n in names if not n.startswith(classifier)]
    if unfreeze_blocks == 0:
        return []
    blocks = backbone.block_names()
    chosen = blocks[-unfreeze_blocks:] if unfreeze_blocks < len(blocks) else blocks
    first = next(i for i, n in enumerate(names) if n.startswith(chosen[0] + "."))
    return [n for n in names[first:] if not n.startswith(classifier)]


def _set_train_mode(net: FinetuneNet, trainable: set[str], freeze_bn: bool) -> None:
    """Train mode everywhere, then inference mode for BN layers with frozen parameters."""
    net.train()
    for name, module in net.backbone.model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
            if freeze_bn or not any(p in trainable for p in own):
                module.eval()


def _bn_policy(strategy: str, config: FinetuneConfig) -> str:
    if strategy == "scratch":
        return "all BN layers train (batch statistics)"
    if config.freeze_bn:
        return "all BN layers in inference mode; affine weights train in unfrozen blocks"
    return "BN in frozen blocks in inference mode; BN in unfrozen blocks trains"


# -- the run ----------------------------------------------------------------------------------

@dataclass
class _Run:
    """What the phases of one run share: settings, decoded images, network, checkpoint place."""

    config: FinetuneConfig
    strategy: str
    seed: int
    batch_size: int
    classes: list[str]
    parts: dict[str, Part]
    failures: list[tuple[str, str]]
    net: FinetuneNet
    eval_tf: Transform
    checkpoint: Path
    paths: dict[str, list[str]] = field(default_factory=dict)  # per split, as in ``parts``
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)  # set by evaluation

    @property
    def body(self) -> Backbone:
        return self.net.backbone


class _CachedTrunk(NamedTuple):
    """The frozen trunk's output for the train and val images, computed once."""

    split: TrunkSplit
    train: torch.Tensor
    val: torch.Tensor


class _EpochInputs(NamedTuple):
    """What a body epoch iterates over and how it gets logits from a batch."""

    loader: torch.utils.data.DataLoader
    forward: Callable[[torch.Tensor], torch.Tensor]
    val_batches: Replayable


def finetune(data: LabelledImages, split: Split, backbone: str | Backbone, strategy: str,
             output: str | os.PathLike | None, *, image_size: int | None, batch_size: int,
             seed: int, info: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS,
             **knobs: Any) -> TransferModel:
    """Run phase 1 + phase 2 (``finetune``) or full training (``scratch``); save and report."""
    config = FinetuneConfig.from_knobs(**knobs)
    started = time.perf_counter()
    torch.manual_seed(seed)
    run = _prepare(data, split, backbone, strategy, output, config, image_size=image_size,
                   batch_size=batch_size, seed=seed, max_pixels=max_pixels)
    state, resumed = _resume(run)
    trunk = _cache_trunk(run)
    if strategy == "finetune" and not state["phase1_done"]:
        _fit_head_on_frozen_features(run, state, trunk)
    trainable = _unfreeze(run)
    optimizer = _make_optimizer(run, trainable, resumed)
    best = resumed.best if resumed is not None else _snapshot(run.net)
    stopped_early = _body_epochs(run, state, trainable, optimizer, best,
                                 _epoch_inputs(run, state, trunk))
    train_seconds = time.perf_counter() - started
    model, metrics = _evaluate(run, state)
    model.manifest = _manifest(run, info, state, metrics, trainable=trainable,
                               stopped_early=stopped_early, train_seconds=train_seconds)
    model.history_ = state["history"]
    _save_and_report(run, model, metrics, output)
    return model


# -- prepare data, resume ---------------------------------------------------------------------

def _prepare(data: LabelledImages, split: Split, backbone: str | Backbone, strategy: str,
             output: str | os.PathLike | None, config: FinetuneConfig, *,
             image_size: int | None, batch_size: int, seed: int, max_pixels: int) -> _Run:
    """The body to train, every image decoded once, the network and its checkpoint place."""
    body = _make_body(backbone, strategy, image_size)
    parts, failures, paths = load_parts(data, split, body.preprocessing, max_pixels)
    checkpoint = checkpoint_dir(output)
    net = FinetuneNet(body, len(data.classes), config.dropout).to(
        memory_format=torch.channels_last)
    return _Run(config, strategy, seed, batch_size, data.classes, parts, failures, net,
                body.preprocessing.eval_transform(), checkpoint, paths)


def _make_body(backbone: str | Backbone, strategy: str, image_size: int | None) -> Backbone:
    name = backbone.name if isinstance(backbone, Backbone) else backbone
    if strategy == "scratch":
        body = create(name, pretrained=False)
    elif isinstance(backbone, Backbone):
        body = copy.deepcopy(backbone)  # never train the caller's (possibly shared) backbone
    else:
        body = create(name)
    return body.with_image_size(image_size)


def _resume(run: _Run) -> tuple[dict[str, Any], Checkpoint | None]:
    """Fresh progress counters, or (``resume``) those after the last completed epoch."""
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_val": -1.0, "best_epoch": 0,
                             "bad_epochs": 0, "phase1_done": False}
    if not (run.config.resume and (run.checkpoint / "state.json").exists()):
        return state, None
    resumed = load_checkpoint(run.checkpoint)
    saved = resumed.state
    if saved.get("classes") != run.classes or saved.get("strategy") != run.strategy:
        raise ValueError(f"{run.checkpoint}: checkpoint is for another run (classes/strategy "
                         f"differ); delete it or drop --resume")
    run.net.load_state_dict(resumed.weights)
    state.update({k: saved[k] for k in state})
    state["resumed_from_epoch"] = saved["epoch"]
    torch.set_rng_state(resumed.tensors["rng.torch"])
    return state, resumed


def _cache_trunk(run: _Run) -> _CachedTrunk | None:
    """Without pixel augmentation a frozen trunk's output never changes (its BN is in
    inference mode), so compute it once and let the epochs run only the top blocks."""
    if run.strategy != "finetune" or run.config.augment:
        return None
    size = run.body.preprocessing.input_size
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    split = split_trunk(run.body.model, run.config.unfreeze_blocks, example)
    if split is None:
        return None
    train, val = (trunk_outputs(run.body, split, run.parts[name][0], run.eval_tf,
                                run.batch_size) for name in ("train", "val"))
    return _CachedTrunk(split, train, val)


# -- phase 1: linear head on frozen features --------------------------------------------------

def _fit_head_on_frozen_features(run: _Run, state: dict[str, Any],
                                 trunk: _CachedTrunk | None) -> None:
    """A linear probe on frozen features becomes the head, and the bar body epochs must beat."""
    if run.config.head_epochs > 0:
        train_x, val_x = _frozen_features(run, trunk)
        val_y = np.asarray(run.parts["val"][1]) if val_x is not None else None
        probe = LinearHead(epochs=run.config.head_epochs, weight_decay=1e-3,
                           label_smoothing=run.config.label_smoothing, random_state=run.seed)
        probe.fit(train_x, run.parts["train"][1], X_val=val_x, y_val=val_y)
        _fold_probe_into(run.net.head, probe)
        state["history"] += [{**row, "phase": "head"} for row in probe.history_]
    state["phase1_done"] = True
    if state["history"] and "val_accuracy" in state["history"][-1]:
        state["best_val"] = state["history"][-1]["val_accuracy"]


def _frozen_features(run: _Run, trunk: _CachedTrunk | None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings of the train and val images (val None when there are no val images)."""
    has_val = bool(run.parts["val"][0])
    if trunk is not None:  # finish the cached trunk instead of a second full pass
        train_x, val_x = (top_embeddings(run.body, trunk.split, out, run.batch_size)
                          for out in (trunk.train, trunk.val))
        return train_x, val_x if has_val else None
    train_x = embed_images(run.parts["train"][0], run.body, run.batch_size)
    if not has_val:
        return train_x, None
    return train_x, embed_images(run.parts["val"][0], run.body, run.batch_size)


def _fold_probe_into(head: nn.Linear, probe: LinearHead) -> None:
    """Copy the probe into ``head``, folding its feature standardisation into the weights."""
    layer = probe.module_[0]
    weight = torch.zeros(head.out_features, layer.in_features)
    bias = torch.full((head.out_features,), -10.0)  # classes missing from train stay unlikely
    scale = torch.from_numpy(probe.scale_)
    mean = torch.from_numpy(probe.mean_)
    cols = torch.as_tensor(probe.classes_.astype(np.int64))
    w = layer.weight.detach() / scale
    weight[cols] = w
    bias[cols] = layer.bias.detach() - w @ mean
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)


# -- optimiser set-up -------------------------------------------------------------------------

def _unfreeze(run: _Run) -> set[str]:
    """Switch gradients on for the head and the trained blocks only; their parameter names."""
    unfreeze_blocks = -1 if run.strategy == "scratch" else run.config.unfreeze_blocks
    trainable = set(trainable_body_parameters(run.body, unfreeze_blocks))
    for name, param in run.body.model.named_parameters():
        param.requires_grad_(name in trainable)
    for param in run.net.head.parameters():
        param.requires_grad_(True)
    return trainable


def _make_optimizer(run: _Run, trainable: set[str],
                    resumed: Checkpoint | None) -> torch.optim.Optimizer:
    """AdamW with the head at ``lr`` and the body at ``body_lr`` (``lr`` for scratch)."""
    config = run.config
    body_params = [p for n, p in run.body.model.named_parameters() if n in trainable]
    body_lr = config.lr if run.strategy == "scratch" else config.body_lr
    groups = [{"params": list(run.net.head.parameters()), "lr": config.lr,
               "base_lr": config.lr, "name": "head"}]
    if body_params:
        groups.append({"params": body_params, "lr": body_lr, "base_lr": body_lr, "name": "body"})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    if resumed is not None:
        restore_optimizer(optimizer, resumed)
    return optimizer


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """Image batches (and CNN trunk maps) in the layout CPU convolutions prefer; token
    sequences from a transformer trunk (N, L, C) as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _epoch_inputs(run: _Run, state: dict[str, Any], trunk: _CachedTrunk | None) -> _EpochInputs:
    """Cached trunk outputs through the top blocks, or (augmented) images through it all."""
    net, parts, batch_size = run.net, run.parts, run.batch_size
    if trunk is not None:
        train_set = torch.utils.data.TensorDataset(
            trunk.train, torch.as_tensor(parts["train"][1], dtype=torch.long))

        def forward(x: torch.Tensor) -> torch.Tensor:
            return net.head(net.dropout(trunk.split.run_top(x)))

        val_batches = Replayable(lambda: tensor_batches(trunk.val, parts["val"][1], batch_size))
    else:
        transform = run.body.preprocessing.train_transform(run.config.augment, run.config.hflip)
        train_set = ImageList(*parts["train"], transform)
        forward = net
        val_batches = Replayable(lambda: image_batches(parts["val"], run.eval_tf, batch_size))
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, shuffle=True,
        drop_last=len(parts["train"][0]) > batch_size, num_workers=0,
        generator=torch.Generator().manual_seed(run.seed + state["epoch"]))
    return _EpochInputs(loader, forward, val_batches)


# -- phase 2: body epochs with early stopping -------------------------------------------------

def _body_epochs(run: _Run, state: dict[str, Any], trainable: set[str],
                 optimizer: torch.optim.Optimizer, best: dict[str, torch.Tensor],
                 inputs: _EpochInputs) -> bool:
    """Epochs until ``epochs`` or early stopping, a checkpoint after each; the best weights
    (or the phase-1 probe, when no epoch beat it) are loaded at the end. True if stopped early.
    """
    config = run.config
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    identity = {"classes": run.classes, "strategy": run.strategy, "config": asdict(config),
                "backbone": run.body.name, "image_size": run.body.preprocessing.input_size}
    stopped_early, ran = False, 0
    while state["epoch"] < config.epochs:
        if state["bad_epochs"] >= config.patience and state["epoch"] > 0:
            stopped_early = True
            break
        row = _train_epoch(run, state, trainable, optimizer, inputs, loss_fn)
        if _record_epoch(state, row):
            best = _snapshot(run.net)
        save_checkpoint(run.checkpoint, run.net, best, optimizer, {**identity, **state})
        ran += 1
        if config.stop_after_epochs is not None and ran >= config.stop_after_epochs \
                and state["epoch"] < config.epochs:
            raise TrainingInterrupted(run.checkpoint, state["epoch"])
    if state["epoch"] > 0:
        run.net.load_state_dict(best)
    return stopped_early


def _train_epoch(run: _Run, state: dict[str, Any], trainable: set[str],
                 optimizer: torch.optim.Optimizer, inputs: _EpochInputs,
                 loss_fn: nn.Module) -> dict[str, Any]:
    """One cosine-scheduled pass over the training batches, then validation: a history row."""
    config, epoch = run.config, state["epoch"]
    factor = 0.5 * (1 + math.cos(math.pi * epoch / max(1, config.epochs)))
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    _set_train_mode(run.net, trainable, config.freeze_bn and run.strategy != "scratch")
    t0 = time.perf_counter()
    total, correct, seen = _train_steps(inputs, optimizer, loss_fn, config.max_steps_per_epoch,
                                        f"epoch {epoch + 1}/{config.epochs}")
    val_acc, val_loss = _accuracy(inputs.forward, run.net, inputs.val_batches, loss_fn)
    row = {"epoch": len(state["history"]) + 1,
           "phase": "body" if run.strategy == "finetune" else "scratch",
           "train_loss": total / max(1, seen), "train_accuracy": correct / max(1, seen),
           "seconds": time.perf_counter() - t0,
           "images_per_second": seen / max(1e-9, time.perf_counter() - t0)}
    if val_acc is not None:
        row.update(val_accuracy=val_acc, val_loss=val_loss)
    return row


def _train_steps(inputs: _EpochInputs, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                 max_steps: int | None, desc: str) -> tuple[float, int, int]:
    """Optimiser steps over the training batches: summed loss, correct and seen counts."""
    total, correct, seen, steps = 0.0, 0, 0, 0
    for x, y in progress(inputs.loader, desc=desc, unit="batch"):
        logits = inputs.forward(_channels_last(x))
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        steps += 1
        if max_steps and steps >= max_steps:
            break
    return total, correct, seen


def _record_epoch(state: dict[str, Any], row: dict[str, Any]) -> bool:
    """Append ``row`` and update the early-stopping counters; True when the epoch is the best
    so far (validation accuracy, or training loss without validation images)."""
    epoch = state["epoch"] + 1
    state["history"].append(row)
    state["epoch"] = epoch
    score = row["val_accuracy"] if "val_accuracy" in row else -row["train_loss"]
    if score > state["best_val"]:
        state.update(best_val=score, best_epoch=epoch, bad_epochs=0)
        return True
    state["bad_epochs"] += 1
    return False


@torch.inference_mode()
def _accuracy(forward: Callable[[torch.Tensor], torch.Tensor], net: FinetuneNet,
              batches: Replayable, loss_fn: nn.Module) -> tuple[float | None, float | None]:
    """Validation accuracy and loss in inference mode; (None, None) without val images."""
    net.eval()
    correct, total, n = 0, 0.0, 0
    for x, y in batches:
        logits = forward(_channels_last(x))
        correct += int((logits.argmax(1) == y).sum())
        total += float(loss_fn(logits, y)) * len(y)
        n += len(y)
    if n == 0:
        return None, None
    return correct / n, total / n


# -- evaluation, save + report ----------------------------------------------------------------

def _evaluate(run: _Run, state: dict[str, Any]) -> tuple[TransferModel, dict[str, Any]]:
    """The trained body and head as a ``TransferModel``, scored on the val and test images."""
    body = run.body
    body.eval()
    if run.strategy == "finetune" and state["epoch"] > 0 or run.strategy == "scratch":
        body.weights_id = f"{run.strategy}-{state_dict_id(body.model.state_dict())}"
        body.source = f"{run.strategy}:{body.name}"
    head = LinearHead.from_linear(run.net.head, run.classes)
    model = TransferModel([body], [head], run.classes, "concat")
    return model, {name: _split_metrics(run, model, name) for name in ("val", "test")}


def _split_metrics(run: _Run, model: TransferModel, name: str) -> dict[str, Any]:
    images, targets = run.parts[name]
    if not images:
        return {"n": 0, "split": name}
    proba = model._probabilities([embed_images(images, run.body, run.batch_size)])
    run.probabilities[name] = proba
    predicted = [run.classes[i] for i in proba.argmax(axis=1)]
    truth = [run.classes[t] for t in targets]
    return {**classification_metrics(truth, predicted, run.classes), "split": name}


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return metrics["test"] if metrics["test"]["n"] else metrics["val"]


def _manifest(run: _Run, info: dict[str, Any], state: dict[str, Any], metrics: dict[str, Any],
              *, trainable: set[str], stopped_early: bool, train_seconds: float
              ) -> dict[str, Any]:
    headline = _headline(metrics)
    training = {**asdict(run.config), "image_size": run.body.preprocessing.input_size,
                "batch_size": run.batch_size, "epochs_run": state["epoch"],
                "best_epoch": state["best_epoch"], "stopped_early": stopped_early,
                "resumed_from_epoch": state.get("resumed_from_epoch"),
                "bn_policy": _bn_policy(run.strategy, run.config),
                "unfrozen_parameters": len(trainable)}
    return {**info, "training": training,
            "metrics": {"accuracy": headline.get("accuracy"), "split": headline["split"],
                        "val_accuracy": metrics["val"].get("accuracy"),
                        "test_accuracy": metrics["test"].get("accuracy"),
                        "n_test": metrics["test"]["n"]},
            "timing": {"train_seconds": round(train_seconds, 1)},
            "failures": [{"path": p, "reason": r} for p, r in run.failures]}


def _save_and_report(run: _Run, model: TransferModel, metrics: dict[str, Any],
                     output: str | os.PathLike | None) -> None:
    """Write the model with its report; the checkpoint goes once the model is saved (with
    nothing saved, its temporary folder goes)."""
    if output is None:
        shutil.rmtree(run.checkpoint.parent, ignore_errors=True)
        return
    split = _headline(metrics)["split"]
    predictions = split_predictions(
        run.paths.get(split, []), [run.classes[t] for t in run.parts[split][1]],
        run.probabilities.get(split, np.zeros((0, len(run.classes)))), run.classes, split)
    with tempfile.TemporaryDirectory() as tmp:
        write_report(tmp, _headline(metrics), model.history_,
                     {"strategy": run.strategy, "backbone": run.body.name, "splits": metrics,
                      "timing": model.manifest["timing"],
                      "failures": model.manifest["failures"]}, predictions)
        model.save(output, trained_bodies=True, report_dir=tmp)
    if not run.config.keep_checkpoint and run.checkpoint.exists():
        shutil.rmtree(run.checkpoint, ignore_errors=True)
