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

Checkpoints: after every epoch ``<output>.ckpt/`` is replaced atomically with weights,
best weights, AdamW state tensors and RNG state (safetensors) plus ``state.json``
(epoch, history, early-stopping counters, config). ``resume=True`` continues exactly where
the last completed epoch ended; nothing is pickled.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.backbones import Backbone, create
from transferkit.backbones.backbone import state_dict_id
from transferkit.heads import LinearHead
from transferkit.train.data import LabelledImages, Split
from transferkit.train.model import TransferModel
from transferkit.train.report import classification_metrics, write_report
from transferkit.utils import atomic_path, progress


class TrainingInterrupted(RuntimeError):
    """Raised when ``stop_after_epochs`` ends a run early; the checkpoint allows resuming."""

    def __init__(self, checkpoint: Path, epoch: int) -> None:
        self.checkpoint, self.epoch = checkpoint, epoch
        super().__init__(f"stopped after epoch {epoch}; checkpoint in {checkpoint} "
                         f"(run again with resume=True / --resume to continue)")


@dataclass
class FinetuneConfig:
    """Knobs for ``finetune`` / ``scratch`` (all reachable from ``fit`` and the CLI)."""

    epochs: int = 8                  # body epochs (phase 2), or all epochs for scratch
    head_epochs: int = 40            # phase 1: linear head on cached frozen features
    lr: float = 3e-4                 # head learning rate in phase 2 (every layer for scratch)
    body_lr: float = 1e-4            # unfrozen body blocks; keep it below lr
    unfreeze_blocks: int = 2         # how many of the last blocks to train (-1: all)
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    dropout: float = 0.2
    augment: bool = True             # flips, resized crops, colour jitter, small rotations;
    #                                  False caches the frozen trunk's output (much faster)
    hflip: bool = True
    patience: int = 3                # early stopping on validation accuracy
    freeze_bn: bool = True           # BN running stats fixed (see module docstring)
    resume: bool = False
    stop_after_epochs: int | None = None  # simulate an interruption (tests, time budgets)
    max_steps_per_epoch: int | None = None
    keep_checkpoint: bool = False

    @classmethod
    def from_knobs(cls, **knobs: Any) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        config = cls(**knobs)
        if config.epochs < 0 or config.head_epochs < 0:
            raise ValueError("epochs must be >= 0")
        return config


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
    if unfreeze_blocks < 0:
        return [n for n in names if not n.startswith(_classifier_prefix(backbone))]
    if unfreeze_blocks == 0:
        return []
    blocks = backbone.block_names()
    chosen = blocks[-unfreeze_blocks:] if unfreeze_blocks < len(blocks) else blocks
    first = next(i for i, n in enumerate(names) if n.startswith(chosen[0] + "."))
    return [n for n in names[first:] if not n.startswith(_classifier_prefix(backbone))]


def _classifier_prefix(backbone: Backbone) -> str:
    get = getattr(backbone.model, "get_classifier", None)
    classifier = get() if get else None
    for name, module in backbone.model.named_modules():
        if module is classifier and name:
            return name + "."
    return "classifier."


def _set_train_mode(net: FinetuneNet, trainable: set[str], freeze_bn: bool) -> None:
    """Train mode everywhere, then inference mode for BN layers with frozen parameters."""
    net.train()
    for name, module in net.backbone.model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
            if freeze_bn or not any(p in trainable for p in own):
                module.eval()


# -- data -------------------------------------------------------------------------------------

def _train_transform(size: int, mean, std, augment: bool, hflip: bool, interpolation):
    from torchvision import transforms as T

    if not augment:
        return T.Compose([T.Resize((size, size), interpolation=interpolation), T.ToTensor(),
                          T.Normalize(mean, std)])
    steps = [T.RandomResizedCrop(size, scale=(0.6, 1.0), interpolation=interpolation)]
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.RandomApply([T.RandomRotation(12, interpolation=T.InterpolationMode.BILINEAR,
                                              fill=0)], p=0.5),
              T.ColorJitter(0.3, 0.3, 0.3, 0.02), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def _preload(data: LabelledImages, indices: np.ndarray, max_side: int
             ) -> tuple[list, list[int], list[tuple[str, str]]]:
    """Decode once, shrink to what training needs, keep in memory (epochs re-use it)."""
    from PIL import Image

    from transferkit.data import ImageLoadError, load_image

    images, kept, failures = [], [], []
    for i in progress(indices, desc="load images", unit="img"):
        try:
            img = load_image(data.paths[i], draft_size=max_side)
        except ImageLoadError as exc:
            failures.append((exc.path, exc.reason))
            continue
        if min(img.size) > max_side:
            scale = max_side / min(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.BICUBIC)
        images.append(img)
        kept.append(int(i))
    return images, kept, failures


class _ImageList(torch.utils.data.Dataset):
    def __init__(self, images: list, targets: list[int], transform) -> None:
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.targets[i]


@torch.inference_mode()
def _embed(backbone: Backbone, images: list, transform, batch_size: int) -> np.ndarray:
    backbone.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([transform(img) for img in images[start:start + batch_size]])
        out.append(backbone.embed(batch.contiguous(memory_format=torch.channels_last)).numpy())
    return np.concatenate(out) if out else np.zeros((0, backbone.num_features), np.float32)


# -- checkpoints ------------------------------------------------------------------------------

def _save_checkpoint(path: Path, net: FinetuneNet, best: dict[str, torch.Tensor],
                     optimizer: torch.optim.Optimizer | None, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()},
                  str(tmp / "model.safetensors"))
        save_file({k: v.contiguous() for k, v in best.items()}, str(tmp / "best.safetensors"))
        tensors = {"rng.torch": torch.get_rng_state()}
        groups = []
        if optimizer is not None:
            opt_state = optimizer.state_dict()
            for pid, slots in opt_state["state"].items():
                for key, value in slots.items():
                    tensors[f"opt.{pid}.{key}"] = torch.as_tensor(value).contiguous()
            groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
                      for g in opt_state["param_groups"]]
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "param_groups": groups}, indent=2,
                                                   default=str))


def _load_checkpoint(path: Path) -> tuple[dict, dict, dict, dict[str, Any]]:
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    return (load_file(str(path / "model.safetensors")), load_file(str(path / "best.safetensors")),
            load_file(str(path / "optimizer.safetensors")), state)


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       groups: list[dict[str, Any]]) -> None:
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            slots.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": groups})


# -- the loop ---------------------------------------------------------------------------------

def finetune(data: LabelledImages, split: Split, backbone: str | Backbone, strategy: str,
             output: str | os.PathLike | None, *, image_size: int | None, batch_size: int,
             seed: int, info: dict[str, Any], **knobs: Any) -> TransferModel:
    """Run phase 1 + phase 2 (``finetune``) or full training (``scratch``); save and report."""
    config = FinetuneConfig.from_knobs(**knobs)
    started = time.perf_counter()
    torch.manual_seed(seed)
    classes = data.classes
    body = _make_body(backbone, strategy, image_size)
    prep = body.preprocessing
    size = prep.input_size
    class_index = {c: i for i, c in enumerate(classes)}

    all_idx = np.concatenate([split.train, split.val, split.test])
    images, kept, failures = _preload(data, all_idx, max_side=max(size, prep.resize_size) + 8)
    image_of = dict(zip(kept, images))
    parts = {}
    for name, idx in (("train", split.train), ("val", split.val), ("test", split.test)):
        ok = [int(i) for i in idx if int(i) in image_of]
        parts[name] = ([image_of[i] for i in ok], [class_index[data.labels[i]] for i in ok])
    if not parts["train"][0]:
        raise ValueError(f"{data.source}: no readable training images")

    ckpt = _checkpoint_dir(output)
    net = FinetuneNet(body, len(classes), config.dropout).to(memory_format=torch.channels_last)
    eval_tf = prep.eval_transform()
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_val": -1.0, "best_epoch": 0,
                             "bad_epochs": 0, "phase1_done": False}
    resumed = None
    if config.resume and (ckpt / "state.json").exists():
        resumed = _load_checkpoint(ckpt)
        saved = resumed[3]
        if saved.get("classes") != classes or saved.get("strategy") != strategy:
            raise ValueError(f"{ckpt}: checkpoint is for another run (classes/strategy differ); "
                             f"delete it or drop --resume")
        net.load_state_dict(resumed[0])
        state.update({k: saved[k] for k in state})
        torch.set_rng_state(resumed[2]["rng.torch"])

    split_at = _trunk_split(body, config, strategy)
    trunk_train = trunk_val = None
    if split_at is not None:
        # No pixel augmentation and a frozen trunk: the trunk's output never changes (its BN
        # is in inference mode), so it is computed once and epochs only run the top blocks.
        trunk_train = _run_trunk(body, split_at, parts["train"][0], eval_tf, batch_size)
        trunk_val = _run_trunk(body, split_at, parts["val"][0], eval_tf, batch_size)
    if strategy == "finetune" and not state["phase1_done"]:
        features = None
        if split_at is not None:  # finish the cached trunk instead of a second full pass
            features = tuple(_top_features(body, split_at, t, batch_size)
                             for t in (trunk_train, trunk_val))
        state["history"] += _phase1_head(net, parts, eval_tf, config, batch_size, seed,
                                         features)
        state["phase1_done"] = True
        if state["history"] and "val_accuracy" in state["history"][-1]:
            # the probe is the bar to beat: body epochs must improve on it to be kept
            state["best_val"] = state["history"][-1]["val_accuracy"]

    trainable = set(trainable_body_parameters(body, -1 if strategy == "scratch"
                                              else config.unfreeze_blocks))
    body_params, head_params = [], list(net.head.parameters())
    for name, param in body.model.named_parameters():
        param.requires_grad_(name in trainable)
        if name in trainable:
            body_params.append(param)
    for param in net.head.parameters():
        param.requires_grad_(True)
    body_lr = config.lr if strategy == "scratch" else config.body_lr
    groups = [{"params": head_params, "lr": config.lr, "base_lr": config.lr, "name": "head"}]
    if body_params:
        groups.append({"params": body_params, "lr": body_lr, "base_lr": body_lr, "name": "body"})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    if resumed is not None and resumed[3].get("param_groups"):
        _restore_optimizer(optimizer, resumed[2], resumed[3]["param_groups"])
    best = resumed[1] if resumed is not None else \
        {k: v.detach().clone() for k, v in net.state_dict().items()}

    if split_at is not None:
        train_set = torch.utils.data.TensorDataset(
            trunk_train, torch.as_tensor(parts["train"][1], dtype=torch.long))

        def forward(x: torch.Tensor) -> torch.Tensor:
            return net.head(net.dropout(_run_top(body, split_at, x)))

        val_batches = _Replayable(lambda: _tensor_batches(trunk_val, parts["val"][1],
                                                          batch_size))
    else:
        from torchvision.transforms import InterpolationMode

        train_tf = _train_transform(size, prep.mean, prep.std, config.augment, config.hflip,
                                    InterpolationMode(prep.interpolation))
        train_set = _ImageList(*parts["train"], train_tf)
        forward = net
        val_batches = _Replayable(lambda: _image_batches(parts["val"], eval_tf, batch_size))
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, shuffle=True,
        drop_last=len(parts["train"][0]) > batch_size, num_workers=0,
        generator=torch.Generator().manual_seed(seed + state["epoch"]))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    base_state = {"classes": classes, "strategy": strategy, "config": asdict(config),
                  "backbone": body.name, "image_size": size}
    ran = 0
    stopped_early = False
    while state["epoch"] < config.epochs:
        if state["bad_epochs"] >= config.patience and state["epoch"] > 0:
            stopped_early = True
            break
        epoch = state["epoch"]
        factor = 0.5 * (1 + math.cos(math.pi * epoch / max(1, config.epochs)))
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        _set_train_mode(net, trainable, config.freeze_bn and strategy != "scratch")
        total, correct, seen, steps = 0.0, 0, 0, 0
        t0 = time.perf_counter()
        for x, y in progress(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch"):
            logits = forward(x.contiguous(memory_format=torch.channels_last))
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            steps += 1
            if config.max_steps_per_epoch and steps >= config.max_steps_per_epoch:
                break
        val_acc, val_loss = _accuracy(forward, net, val_batches, loss_fn)
        row = {"epoch": len(state["history"]) + 1, "phase": "body" if strategy == "finetune"
               else "scratch", "train_loss": total / max(1, seen),
               "train_accuracy": correct / max(1, seen), "seconds": time.perf_counter() - t0,
               "images_per_second": seen / max(1e-9, time.perf_counter() - t0)}
        if val_acc is not None:
            row.update(val_accuracy=val_acc, val_loss=val_loss)
        state["history"].append(row)
        state["epoch"] = epoch + 1
        score = val_acc if val_acc is not None else -row["train_loss"]
        if score > state["best_val"]:
            state.update(best_val=score, best_epoch=epoch + 1, bad_epochs=0)
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        _save_checkpoint(ckpt, net, best, optimizer, {**base_state, **state})
        ran += 1
        if config.stop_after_epochs is not None and ran >= config.stop_after_epochs \
                and state["epoch"] < config.epochs:
            raise TrainingInterrupted(ckpt, state["epoch"])
    if state["epoch"] > 0:
        net.load_state_dict(best)
    train_seconds = time.perf_counter() - started

    body.eval()
    if strategy == "finetune" and state["epoch"] > 0 or strategy == "scratch":
        body.weights_id = f"{strategy}-{state_dict_id(body.model.state_dict())}"
        body.source = f"{strategy}:{body.name}"
    head = LinearHead.from_linear(net.head, classes)
    model = TransferModel([body], [head], classes, "concat")
    metrics = {}
    for name in ("val", "test"):
        imgs, targets = parts[name]
        if not imgs:
            metrics[name] = {"n": 0, "split": name}
            continue
        proba = model._probabilities([_embed(body, imgs, eval_tf, batch_size)])
        pred = [classes[i] for i in proba.argmax(axis=1)]
        metrics[name] = {**classification_metrics([classes[t] for t in targets], pred, classes),
                         "split": name}
    headline = metrics["test"] if metrics["test"]["n"] else metrics["val"]
    model.manifest = {**info, "training": {**asdict(config), "image_size": size,
                                           "batch_size": batch_size,
                                           "epochs_run": state["epoch"],
                                           "best_epoch": state["best_epoch"],
                                           "stopped_early": stopped_early,
                                           "bn_policy": _bn_policy(strategy, config),
                                           "unfrozen_parameters": len(trainable)},
                      "metrics": {"accuracy": headline.get("accuracy"), "split": headline["split"],
                                  "val_accuracy": metrics["val"].get("accuracy"),
                                  "test_accuracy": metrics["test"].get("accuracy"),
                                  "n_test": metrics["test"]["n"]},
                      "timing": {"train_seconds": round(train_seconds, 1)},
                      "failures": [{"path": p, "reason": r} for p, r in failures]}
    model.history_ = state["history"]
    if output is not None:
        with tempfile.TemporaryDirectory() as tmp:
            write_report(tmp, headline, state["history"],
                         {"strategy": strategy, "backbone": body.name, "splits": metrics,
                          "timing": model.manifest["timing"],
                          "failures": model.manifest["failures"]})
            model.save(output, trained_bodies=True, report_dir=tmp)
    if not config.keep_checkpoint and ckpt.exists() and output is not None:
        shutil.rmtree(ckpt, ignore_errors=True)
    return model


def _bn_policy(strategy: str, config: FinetuneConfig) -> str:
    if strategy == "scratch":
        return "all BN layers train (batch statistics)"
    if config.freeze_bn:
        return "all BN layers in inference mode; affine weights train in unfrozen blocks"
    return "BN in frozen blocks in inference mode; BN in unfrozen blocks trains"


def _checkpoint_dir(output: str | os.PathLike | None) -> Path:
    if output is None:
        return Path(tempfile.mkdtemp(prefix="transferkit-ckpt-")) / "ckpt"
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


def _make_body(backbone: str | Backbone, strategy: str, image_size: int | None) -> Backbone:
    name = backbone.name if isinstance(backbone, Backbone) else backbone
    if strategy == "scratch":
        body = create(name, pretrained=False)
    elif isinstance(backbone, Backbone):
        body = copy.deepcopy(backbone)  # never train the caller's (possibly shared) backbone
    else:
        body = create(name)
    if image_size is not None:
        body.with_preprocessing(body.preprocessing.with_size(image_size, crop_pct=1.0))
    return body


def _phase1_head(net: FinetuneNet, parts: dict, eval_tf, config: FinetuneConfig,
                 batch_size: int, seed: int, features: tuple | None = None
                 ) -> list[dict[str, Any]]:
    """Fit a linear probe on frozen features, fold its standardisation into ``net.head``."""
    if config.head_epochs == 0:
        return []
    val_imgs, val_y = parts["val"]
    if features is not None:
        train_x, val_x = features
        val_x = val_x if val_imgs else None
    else:
        train_x = _embed(net.backbone, parts["train"][0], eval_tf, batch_size)
        val_x = _embed(net.backbone, val_imgs, eval_tf, batch_size) if val_imgs else None
    probe = LinearHead(epochs=config.head_epochs, weight_decay=1e-3,
                       label_smoothing=config.label_smoothing, random_state=seed)
    n_classes = net.head.out_features
    probe.fit(train_x, parts["train"][1], X_val=val_x, y_val=np.asarray(val_y) if val_imgs
              else None)
    layer = probe.module_[0]
    weight = torch.zeros(n_classes, train_x.shape[1])
    bias = torch.full((n_classes,), -10.0)  # classes missing from train stay unlikely
    scale = torch.from_numpy(probe.scale_)
    mean = torch.from_numpy(probe.mean_)
    cols = torch.as_tensor(probe.classes_.astype(np.int64))
    w = layer.weight.detach() / scale
    weight[cols] = w
    bias[cols] = layer.bias.detach() - w @ mean
    with torch.no_grad():
        net.head.weight.copy_(weight)
        net.head.bias.copy_(bias)
    return [{**row, "phase": "head"} for row in probe.history_]


def _image_batches(part: tuple[list, list[int]], eval_tf, batch_size: int):
    images, targets = part
    for start in range(0, len(images), batch_size):
        yield (torch.stack([eval_tf(img) for img in images[start:start + batch_size]]),
               torch.as_tensor(targets[start:start + batch_size]))


def _tensor_batches(x: torch.Tensor, targets: list[int], batch_size: int):
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], torch.as_tensor(targets[start:start + batch_size])


class _Replayable:
    """Re-iterable wrapper so validation batches can be walked every epoch."""

    def __init__(self, make) -> None:
        self.make = make

    def __iter__(self):
        return iter(self.make())


@torch.inference_mode()
def _accuracy(forward, net: FinetuneNet, batches, loss_fn) -> tuple[float | None, float | None]:
    net.eval()
    correct, total, n = 0, 0.0, 0
    for x, y in batches:
        logits = forward(x.contiguous(memory_format=torch.channels_last))
        correct += int((logits.argmax(1) == y).sum())
        total += float(loss_fn(logits, y)) * len(y)
        n += len(y)
    if n == 0:
        return None, None
    return correct / n, total / n


# -- cached trunk (augment=False) -------------------------------------------------------------

def _trunk_split(body: Backbone, config: FinetuneConfig, strategy: str) -> int | None:
    """Index of the first trainable block when the trunk can be cached, else None."""
    model = body.model
    if strategy != "finetune" or config.augment or not all(
            hasattr(model, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
        return None
    n = len(model.blocks)
    if not 0 < config.unfreeze_blocks < n:
        return None
    return n - config.unfreeze_blocks


@torch.inference_mode()
def _run_trunk(body: Backbone, split_at: int, images: list, eval_tf,
               batch_size: int) -> torch.Tensor:
    model = body.model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.stack([eval_tf(img) for img in images[start:start + batch_size]])
        x = model.bn1(model.conv_stem(x.contiguous(memory_format=torch.channels_last)))
        for block in model.blocks[:split_at]:
            x = block(x)
        out.append(x.contiguous())
    if not out:
        return torch.zeros(0)
    return torch.cat(out).clone()  # a normal tensor (not an inference tensor) for autograd


@torch.inference_mode()
def _top_features(body: Backbone, split_at: int, trunk: torch.Tensor,
                  batch_size: int) -> np.ndarray:
    body.eval()
    out = [_run_top(body, split_at, trunk[i:i + batch_size]).numpy()
           for i in range(0, len(trunk), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, body.num_features), np.float32)


def _run_top(body: Backbone, split_at: int, x: torch.Tensor) -> torch.Tensor:
    model = body.model
    for block in model.blocks[split_at:]:
        x = block(x)
    return model.forward_head(model.bn2(model.conv_head(x)), pre_logits=True)
