"""transferkit: reuse what an ImageNet-pretrained network already knows.

Common entry points::

    import transferkit as tk
    model = tk.backbones.create("efficientnet_lite0")
    emb = tk.features.embed_paths(["a.jpg", "b.png"], backbone="efficientnet_lite0")
    thing = tk.load("my-model")   # any saved artefact, by the format it records
"""

import os
from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "errors", "utils", "spec", "backbones", "data", "runtime", "features", "heads", "train",
    "search", "autoencoders", "explain", "text", "audio", "service", "distributed", "loading",
}


def load(path: str | os.PathLike) -> Any:
    """Open any saved transferkit artefact (model, index, embeddings, head, ...) by its format."""
    from transferkit.loading import load as load_artefact

    return load_artefact(path)


def __getattr__(name: str) -> Any:
    # Lazy sub-packages keep `import transferkit` (and the CLI's --help) fast.
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'transferkit' has no attribute {name!r}")
