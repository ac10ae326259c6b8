"""ImageNet-1k class names (they ship inside timm, so no download)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_labels() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]


def imagenet_index(query: str) -> int:
    """Class index from a number or a (case-insensitive) name fragment such as 'tabby'."""
    if query.strip().isdigit():
        return int(query)
    labels = imagenet_labels()
    q = query.strip().lower()
    exact = [i for i, name in enumerate(labels)
             if q in (part.strip().lower() for part in name.split(","))]
    if exact:
        return exact[0]
    partial = [i for i, name in enumerate(labels) if q in name.lower()]
    if not partial:
        raise ValueError(f"no ImageNet class matches {query!r}")
    return partial[0]
