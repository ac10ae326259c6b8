"""Pretrained image backbones that work offline, with their preprocessing."""

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
           "create", "describe_backbones", "list_backbones", "register_backbone",
           "imagenet_labels", "imagenet_index", "state_dict_id"]
