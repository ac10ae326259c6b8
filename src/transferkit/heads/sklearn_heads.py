"""scikit-learn heads whose fitted state is copied out as arrays.

Prediction always runs from those arrays (not from the sklearn object), so a head loaded
from disk predicts exactly what the freshly fitted one did, with no pickle involved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transferkit.heads.base import ArrayHead
from transferkit.heads.trees import (
    forest_from_sklearn,
    hist_boosting_from_sklearn,
    tree_ensemble_values,
)


class LogRegHead(ArrayHead):
    """Standardise, then multinomial L2 logistic regression (L-BFGS): strong, fast default."""

    kind = "logreg"

    def __init__(self, C: float = 0.5, max_iter: int = 1000, random_state: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray, **_: Any) -> None:
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-6
        clf = LogisticRegression(C=self.C, max_iter=self.max_iter,
                                 random_state=self.random_state)
        # Small matrices: BLAS/OpenMP threads only add spin-wait contention (10-40x slower
        # on a busy 2-core machine), so L-BFGS runs single-threaded.
        with threadpool_limits(1):
            clf.fit((X - self.mean_) / self.scale_, y)
        coef, intercept = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row; make it two softmax logits
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        self.coef_, self.intercept_ = coef.astype(np.float32), intercept.astype(np.float32)
        self.mean_, self.scale_ = self.mean_.astype(np.float32), self.scale_.astype(np.float32)

    def decision_function(self, X: Any) -> np.ndarray:
        X = self._check_input(X)
        return ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({"coef": self.coef_, "intercept": self.intercept_, "mean": self.mean_,
                 "scale": self.scale_}, {**self._base_meta(), "params": self.get_params()})

    def _set_arrays(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._restore_base(meta)
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
        self.mean_, self.scale_ = arrays["mean"], arrays["scale"]


class _TreeHead(ArrayHead):
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return dict(self.trees_), {**self._base_meta(), "params": self.get_params(),
                                   "mode": self._mode}

    def _set_arrays(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._restore_base(meta)
        self.trees_ = dict(arrays)


class RandomForestHead(_TreeHead):
    """Random forest; robust to feature scale, rarely the most accurate on embeddings."""

    kind = "random_forest"
    _mode = "average_proba"

    def __init__(self, n_estimators: int = 300, max_features: str | float = "sqrt",
                 min_samples_leaf: int = 1, n_jobs: int = -1, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray, **_: Any) -> None:
        from sklearn.ensemble import RandomForestClassifier

        clf = RandomForestClassifier(n_estimators=self.n_estimators,
                                     max_features=self.max_features,
                                     min_samples_leaf=self.min_samples_leaf,
                                     n_jobs=self.n_jobs, random_state=self.random_state)
        clf.fit(X, y)
        self.trees_ = forest_from_sklearn(clf, len(self.classes_))

    def predict_proba(self, X: Any) -> np.ndarray:
        values = tree_ensemble_values(self.trees_, self._check_input(X))  # (trees, n, classes)
        return values.mean(axis=0)


class GradientBoostingHead(_TreeHead):
    """Histogram gradient boosting (sklearn's fast variant), one tree per class per round."""

    kind = "gradient_boosting"
    _mode = "boosting_logits"

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 15,
                 l2_regularization: float = 0.0, early_stopping: bool = False,
                 n_threads: int = 1, random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.early_stopping = early_stopping
        self.n_threads = n_threads
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray, **_: Any) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        clf = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, l2_regularization=self.l2_regularization,
            early_stopping=self.early_stopping, random_state=self.random_state)
        with threadpool_limits(self.n_threads):  # OpenMP on a shared 2-core box: 1 is faster
            clf.fit(X, y)
        self.trees_ = hist_boosting_from_sklearn(clf, len(self.classes_))

    def decision_function(self, X: Any) -> np.ndarray:
        values = tree_ensemble_values(self.trees_, self._check_input(X))  # (trees, n, 1)
        n_classes = len(self.classes_)
        tree_class = self.trees_["tree_class"]
        logits = np.tile(self.trees_["baseline"].astype(np.float64), (values.shape[1], 1))
        for k in range(logits.shape[1]):
            logits[:, k] += values[tree_class == k, :, 0].sum(axis=0)
        if n_classes == 2 and logits.shape[1] == 1:  # binary log-odds -> two softmax logits
            logits = np.hstack([np.zeros_like(logits), logits])
        return logits
