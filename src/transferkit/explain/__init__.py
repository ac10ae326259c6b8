"""What a backbone has learned, and how brittle it is: activation maximisation, the dataset
images that excite a unit most, and adversarial examples (FGSM / PGD)."""

from transferkit.explain._model import PixelModel
from transferkit.explain.atlas import LayerAtlas, channel_scores, layer_atlas, load_atlas_images
from transferkit.explain.attacks import METHODS, AttackResult, attack, fgsm, parse_eps, pgd
from transferkit.explain.featurevis import (
    OLD_DEFAULTS,
    FourierImage,
    Target,
    Visualization,
    classify_image,
    neighbour_difference,
    parse_target,
    saturated_fraction,
    visualize,
    visualize_channels,
)
from transferkit.explain.top_images import TopImages, top_activating

__all__ = ["LayerAtlas", "channel_scores", "layer_atlas", "load_atlas_images",
           "PixelModel", "attack", "fgsm", "pgd", "parse_eps", "METHODS", "AttackResult",
           "TopImages", "top_activating", "FourierImage", "Target", "Visualization",
           "classify_image", "parse_target", "visualize", "visualize_channels", "OLD_DEFAULTS",
           "saturated_fraction", "neighbour_difference"]
