"""Files -> images: robust loading, folder datasets, bundled and Debian-packaged data."""

from transferkit.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    write_fashion_mnist_folder,
)
from transferkit.data.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    load_image,
    load_image_bytes,
    to_rgb,
    try_load_images,
)
from transferkit.data.inventory import (
    ImageScan,
    count_ignored,
    describe_ignored,
    failure_report_path,
    is_image_file,
    list_images,
    read_failure_report,
    scan_images,
    write_failure_report,
)
from transferkit.data.samples import SAMPLE_PHOTOS, sample_photo, write_sample_photos

__all__ = [
    "FASHION_MNIST_CLASSES",
    "load_fashion_mnist", "write_fashion_mnist_folder", "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS",
    "ImageLoadError", "ImageScan", "count_ignored", "describe_ignored", "failure_report_path",
    "is_image_file", "list_images", "load_image", "load_image_bytes", "read_failure_report",
    "scan_images", "to_rgb", "try_load_images", "write_failure_report",
    "SAMPLE_PHOTOS", "sample_photo",
    "write_sample_photos",
]
