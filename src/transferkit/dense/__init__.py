"""Dense prediction: per-pixel segmentation and single-object localisation."""

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

__all__ = ["BoxData", "BoxSample", "MaskSample", "SegmentationData", "load_boxes", "load_pair",
           "load_segmentation_folder", "read_mask", "write_composites", "write_fixture"]
