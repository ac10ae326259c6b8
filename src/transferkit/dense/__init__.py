"""Dense prediction on pretrained encoders: semantic segmentation (U-Net decoder with a
selectable un-pooling) and single-object localisation, on any registry backbone."""

from transferkit.dense.encoder import DenseEncoder, encode_dataset

__all__ = ["DenseEncoder", "encode_dataset"]
