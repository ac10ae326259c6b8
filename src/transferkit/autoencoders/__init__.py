"""Autoencoders on small grayscale images (Fashion-MNIST): a PCA baseline and a conv AE with
three un-pooling kinds and a denoising mode. Codes are features for search and training."""

from transferkit.autoencoders._base import (
    as_unit_images,
    load_autoencoder,
    load_gray_images,
    to_uint8,
)
from transferkit.autoencoders.conv import UNPOOL_KINDS, ConvAutoencoder
from transferkit.autoencoders.pca import PCAAutoencoder
from transferkit.autoencoders.plots import save_image_grid, save_strip

__all__ = ["ConvAutoencoder", "PCAAutoencoder", "UNPOOL_KINDS", "load_autoencoder",
           "load_gray_images", "as_unit_images", "to_uint8", "save_image_grid", "save_strip"]
