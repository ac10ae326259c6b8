"""Pretrained image backbones that work offline, with their preprocessing."""

from transferkit.backbones.arch import TrunkSplit, block_names, classifier_name, split_trunk
from transferkit.backbones.backbone import Backbone
from transferkit.backbones.imagenet import imagenet_index, imagenet_labels
from transferkit.backbones.preprocessing import Preprocessing
from transferkit.backbones.registry import (
    DEFAULT_BACKBONE,
    create,
    describe_backbones,
    list_backbones,
    register_backbone,
)

__all__ = ["Backbone", "Preprocessing", "DEFAULT_BACKBONE", "create", "describe_backbones",
           "list_backbones", "register_backbone", "imagenet_labels", "imagenet_index",
           "TrunkSplit", "block_names", "classifier_name", "split_trunk"]
