"""transferkit: reuse what an ImageNet-pretrained network already knows.

Common entry points::

    import transferkit as tk
    model = tk.backbones.create("efficientnet_lite0")
    emb = tk.features.embed_paths(["a.jpg", "b.png"], backbone="efficientnet_lite0")
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "backbones", "data", "features", "heads", "train", "search", "autoencoders",
    "explain", "text", "service", "distributed", "inference", "utils",
}


def __getattr__(name: str) -> Any:
    # Lazy sub-packages keep `import transferkit` (and the CLI's --help) fast.
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'transferkit' has no attribute {name!r}")
