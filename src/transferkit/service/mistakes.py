"""What the trained model got wrong: its saved evaluation predictions (``report/predictions.json``,
written by ``transferkit train``) ranked by loss, and the images of a confusion-matrix cell."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("transferkit.service")


@dataclass(frozen=True)
class Evaluated:
    """One evaluated image: where it is, what it is, what the model said."""

    position: int
    path: str
    true: str
    predicted: str
    probability_true: float
    probability_predicted: float
    loss: float


class EvaluationPredictions:
    """The evaluation split's predictions of one model, as arrays."""

    def __init__(self, split: str, classes: list[str], paths: list[str], true: list[str],
                 probabilities: np.ndarray) -> None:
        self.split, self.classes, self.paths = split, classes, paths
        code = {c: n for n, c in enumerate(classes)}
        self.true_codes = np.array([code[t] for t in true], np.int64)
        self.probabilities = np.asarray(probabilities, np.float64).reshape(len(paths),
                                                                           len(classes))
        self.predicted_codes = self.probabilities.argmax(axis=1) if len(paths) else \
            np.zeros(0, np.int64)
        p_true = self.probabilities[np.arange(len(paths)), self.true_codes]
        self.losses = -np.log(np.clip(p_true, 1e-12, 1.0))  # cross-entropy of each image

    @classmethod
    def load(cls, report_dir: str | os.PathLike) -> EvaluationPredictions | None:
        """From ``report_dir/predictions.json``; None when the model has none (older models,
        fine-tuned ones)."""
        path = Path(report_dir) / "predictions.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(data["split"], list(data["classes"]), list(data["paths"]),
                       list(data["true"]), np.asarray(data["probabilities"]))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            # a damaged file costs the mistakes view, not the whole service
            log.warning("%s: unreadable (%s: %s); no mistakes view", path,
                        exc.__class__.__name__, exc)
            return None

    def __len__(self) -> int:
        return len(self.paths)

    def _row(self, n: int) -> Evaluated:
        t, p = int(self.true_codes[n]), int(self.predicted_codes[n])
        return Evaluated(n, self.paths[n], self.classes[t], self.classes[p],
                         float(self.probabilities[n, t]), float(self.probabilities[n, p]),
                         float(self.losses[n]))

    def mistakes(self) -> list[Evaluated]:
        """Wrongly predicted images, highest loss first (fastai's ``top_losses``)."""
        wrong = np.flatnonzero(self.true_codes != self.predicted_codes)
        return [self._row(int(n)) for n in wrong[np.argsort(-self.losses[wrong], kind="stable")]]

    def cell(self, true: str, predicted: str) -> list[Evaluated]:
        """Images of class ``true`` predicted as ``predicted``, highest loss first."""
        if true not in self.classes or predicted not in self.classes:
            raise KeyError(f"unknown class {true if true not in self.classes else predicted!r}"
                           f"; classes: {', '.join(self.classes)}")
        rows = np.flatnonzero((self.true_codes == self.classes.index(true))
                              & (self.predicted_codes == self.classes.index(predicted)))
        return [self._row(int(n)) for n in rows[np.argsort(-self.losses[rows], kind="stable")]]
