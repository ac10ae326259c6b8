"""Pretrained image backbones that work offline, with their preprocessing and the
per-architecture knowledge (block groups, trunk split) that training needs."""

from transferkit.backbones.arch import (
    Layout,
    TrunkSplit,
    block_names,
    classifier_name,
    feature_taps,
    register_layout,
    split_trunk,
)
from transferkit.backbones.backbone import Backbone, state_dict_id
from transferkit.backbones.imagenet import imagenet_index, imagenet_labels
from transferkit.backbones.preprocessing import Preprocessing, ResizeCenterCrop
from transferkit.backbones.registry import (
    BACKBONES,
    DEFAULT_BACKBONE,
    create,
    describe_backbones,
    list_backbones,
    register_backbone,
)

__all__ = ["BACKBONES", "Backbone", "Preprocessing", "ResizeCenterCrop", "DEFAULT_BACKBONE",
           "Layout", "TrunkSplit", "block_names", "classifier_name", "create",
           "describe_backbones", "feature_taps", "imagenet_index", "imagenet_labels",
           "list_backbones", "register_backbone", "register_layout", "split_trunk",
           "state_dict_id"]
