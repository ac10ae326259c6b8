"""Any pretrained timm model, with weights from the Hugging Face hub through its local cache.

Online, the weights file is downloaded once into the Hugging Face cache (``HF_HOME``,
``HF_HUB_CACHE``); offline (``HF_HUB_OFFLINE=1``, or no network) it is read from there. The file
is handed to timm's own pretrained loader (its checkpoint filters and classifier handling
apply), and its identity - repository, revision, file name and SHA-256 - goes into the
backbone's spec, so an artefact built on it refuses other weights later.
Nothing here runs unless a caller names a hub model: the registered Lite models stay offline.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transferkit.errors import MissingWeightsError, UnknownNameError

# What timm publishes, preferred first: safetensors never runs code when loaded.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class HubWeights:
    """Where a pretrained tag's weights came from, exactly."""

    name: str          # timm name with its tag, e.g. resnet18.a1_in1k
    repo: str          # timm/resnet18.a1_in1k
    revision: str      # the cached snapshot's commit hash
    filename: str
    sha256: str
    path: str

    @property
    def weights_id(self) -> str:
        return f"hf-{self.sha256[:16]}"

    @property
    def source(self) -> str:
        return f"hf:{self.repo}@{self.revision}"

    def record(self) -> dict[str, Any]:
        """The part of a spec that names these weights (the local path is left out)."""
        return {k: v for k, v in asdict(self).items() if k != "path"}


def pretrained_name(name: str) -> str | None:
    """``name`` with timm's default tag (``resnet18`` -> ``resnet18.a1_in1k``) when it names a
    pretrained timm model, else None."""
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        return None
    if not tag:
        cfg = get_pretrained_cfg(arch)
        if cfg is None or not cfg.tag:
            return None
        name = f"{arch}.{cfg.tag}"
    # timm lists only tags with published weights (not e.g. "cspresnet50w.untrained")
    return name if timm.list_pretrained(name) else None


def hub_repo(name: str) -> str:
    """The Hugging Face repository timm loads ``name``'s weights from."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if not cfg.hf_hub_id:
        raise MissingWeightsError(
            f"{name}: timm has no Hugging Face copy of these weights (only {cfg.url or 'none'});"
            f" download them yourself and pass checkpoint=FILE / --checkpoint FILE")
    return cfg.hf_hub_id


def fetch_weights(name: str, revision: str | None = None) -> HubWeights:
    """The weights file of pretrained tag ``name``: from the cache, or downloaded into it.

    Raises :class:`MissingWeightsError` naming both ways out when the file is neither cached
    nor downloadable (offline, no network).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    full = pretrained_name(name)
    if full is None:
        raise UnknownNameError(f"{name}: not a pretrained timm model (see `transferkit "
                               f"backbones --all`)")
    repo = hub_repo(full)
    failures = []
    for filename in WEIGHT_FILES:
        try:
            path = hf_hub_download(repo, filename, revision=revision, cache_dir=hub_cache(),
                                   local_files_only=hub_offline())
        except LocalEntryNotFoundError as exc:  # offline and not cached, or no network
            failures.append(f"{filename}: {str(exc).splitlines()[0][:160]}")
            continue
        except Exception as exc:  # noqa: BLE001 - e.g. the repo has no such file online
            failures.append(f"{filename}: {exc.__class__.__name__}")
            continue
        return HubWeights(full, repo, _revision_of(path), filename, _verified_sha256(path),
                          path)
    raise MissingWeightsError(
        f"{full}: weights not found in the Hugging Face cache ({hub_cache()}) and could not "
        f"be downloaded ({'; '.join(failures)}). Either run once on a machine that is online "
        f"(they are cached), or pre-populate the cache with `huggingface-cli download {repo}`, "
        f"or pass a local weights file with checkpoint=FILE / --checkpoint FILE")


def _verified_sha256(path: str) -> str:
    """The file's SHA-256; the cache names large files' blobs by it, so a blob whose content
    no longer matches its name (a cut download, a disk error) is refused here."""
    sha = file_sha256(path)
    blob = Path(os.path.realpath(path))
    if blob.parent.name == "blobs" and len(blob.name) == 64 and blob.name != sha:
        raise ValueError(f"{path}: cached weights are corrupt (content SHA-256 {sha[:12]}... "
                         f"differs from the blob's {blob.name[:12]}...); delete {blob} to "
                         f"download it again")
    return sha


def _revision_of(path: str) -> str:
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else "unknown"


def hub_cache() -> str:
    """The Hugging Face cache folder, read from the environment at call time (``HF_HUB_CACHE``,
    else ``HF_HOME``/hub, else the library's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now: only the cache is read, no network is tried."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    if value:
        return value in ("1", "true", "yes", "on")
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime): big weights hash once."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def cached_models() -> list[str]:
    """timm names whose weights are in the local Hugging Face cache (ready offline)."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(hub_cache())
    except Exception:  # noqa: BLE001 - no cache folder yet, or an unreadable one
        return []
    names = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.repo_id.startswith("timm/"):
            continue
        files = {f.file_name for rev in repo.revisions for f in rev.files}
        if files & set(WEIGHT_FILES):
            names.append(repo.repo_id.removeprefix("timm/"))
    return sorted(names)
