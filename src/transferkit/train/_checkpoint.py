"""Per-epoch fine-tune checkpoints: safetensors + JSON, replaced atomically, never pickled.

``<output>.ckpt/`` holds ``model.safetensors`` (current weights), ``best.safetensors`` (the
best epoch's weights), ``optimizer.safetensors`` (AdamW state tensors and the torch RNG
state) and ``state.json`` (epoch, history, early-stopping counters, run identity and the
optimizer's parameter groups), so a killed run resumes exactly after its last epoch.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from transferkit.utils import atomic_path


class Checkpoint(NamedTuple):
    """What ``load_checkpoint`` reads back."""

    weights: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]  # "rng.torch" and "opt.<param id>.<slot>"
    state: dict[str, Any]


def checkpoint_dir(output: str | os.PathLike | None) -> Path:
    """``<output>.ckpt`` beside the model; a fresh temporary place when nothing is saved."""
    if output is None:
        return Path(tempfile.mkdtemp(prefix="transferkit-ckpt-")) / "ckpt"
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


def save_checkpoint(path: Path, net: nn.Module, best: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer | None, state: dict[str, Any]) -> None:
    """Replace ``path`` atomically, so a kill mid-write leaves the previous epoch's intact."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()},
                  str(tmp / "model.safetensors"))
        save_file({k: v.contiguous() for k, v in best.items()}, str(tmp / "best.safetensors"))
        tensors, groups = _optimizer_tensors(optimizer)
        save_file({"rng.torch": torch.get_rng_state(), **tensors},
                  str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "param_groups": groups}, indent=2,
                                                   default=str))


def _optimizer_tensors(optimizer: torch.optim.Optimizer | None
                       ) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Optimizer state as flat named tensors plus its JSON-able parameter groups."""
    if optimizer is None:
        return {}, []
    opt_state = optimizer.state_dict()
    tensors = {f"opt.{pid}.{key}": torch.as_tensor(value).contiguous()
               for pid, slots in opt_state["state"].items() for key, value in slots.items()}
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
              for g in opt_state["param_groups"]]
    return tensors, groups


def load_checkpoint(path: Path) -> Checkpoint:
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    return Checkpoint(load_file(str(path / "model.safetensors")),
                      load_file(str(path / "best.safetensors")),
                      load_file(str(path / "optimizer.safetensors")), state)


def restore_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Checkpoint) -> None:
    """Load the AdamW moments and step counts saved by ``save_checkpoint``, if any."""
    groups = checkpoint.state.get("param_groups")
    if not groups:
        return
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in checkpoint.tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            slots.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
