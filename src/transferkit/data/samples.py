"""Photos bundled with scikit-image, used as the default demo and test inputs."""

from __future__ import annotations

import os
from pathlib import Path

# name in skimage.data -> what ImageNet should see in it
SAMPLE_PHOTOS = {
    "chelsea": "tabby cat",
    "coffee": "espresso",
    "astronaut": "person in space suit",
    "rocket": "space shuttle",
    "camera": "man with camera (grayscale)",
}


def sample_photo(name: str):
    import skimage.data

    from transferkit.data.images import to_rgb

    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"unknown sample {name!r}; choose from {sorted(SAMPLE_PHOTOS)}")
    from PIL import Image

    return to_rgb(Image.fromarray(getattr(skimage.data, name)()))


def write_sample_photos(dest: str | os.PathLike, names=None) -> list[Path]:
    """Save the bundled photos as JPEG files (so they flow through the file pipeline)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or SAMPLE_PHOTOS:
        path = dest / f"{name}.jpg"
        if not path.exists():
            sample_photo(name).save(path, quality=95)
        written.append(path)
    return written
