"""Files -> images: robust loading, folder datasets, bundled and Debian-packaged data."""

from transferkit.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    write_fashion_mnist_folder,
)
from transferkit.data.images import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    list_images,
    load_image,
    load_image_bytes,
    to_rgb,
    try_load_images,
)
from transferkit.data.samples import SAMPLE_PHOTOS, sample_photo, write_sample_photos

__all__ = [
    "FASHION_MNIST_CLASSES",
    "load_fashion_mnist", "write_fashion_mnist_folder", "IMAGE_EXTENSIONS", "ImageLoadError",
    "list_images", "load_image", "load_image_bytes", "to_rgb", "try_load_images",
    "SAMPLE_PHOTOS", "sample_photo",
    "write_sample_photos",
]
