"""What a backbone has learned, and how brittle it is: activation maximisation, the dataset
images that excite a unit most, and adversarial examples (FGSM / PGD)."""

from transferkit.explain._model import PixelModel
from transferkit.explain.attacks import METHODS, AttackResult, attack, fgsm, parse_eps, pgd
from transferkit.explain.featurevis import (
    FourierImage,
    Target,
    Visualization,
    classify_image,
    parse_target,
    visualize,
)
from transferkit.explain.top_images import TopImages, top_activating

__all__ = ["PixelModel", "attack", "fgsm", "pgd", "parse_eps", "METHODS", "AttackResult",
           "TopImages", "top_activating", "FourierImage", "Target", "Visualization",
           "classify_image", "parse_target", "visualize"]
