"""Dense prediction on pretrained encoders: per-pixel segmentation (U-Net decoder with a
selectable un-pooling) and single-object localisation, on any registry backbone."""

from transferkit.dense.data import (
    BoxData,
    BoxSample,
    MaskSample,
    SegmentationData,
    load_boxes,
    load_pair,
    load_segmentation_folder,
    read_mask,
    write_composites,
    write_fixture,
)
from transferkit.dense.encoder import DenseEncoder, encode_dataset

__all__ = ["BoxData", "BoxSample", "DenseEncoder", "MaskSample", "SegmentationData",
           "encode_dataset", "load_boxes", "load_pair", "load_segmentation_folder", "read_mask",
           "write_composites", "write_fixture"]
