"""Tree ensembles as flat arrays, evaluated with numpy.

Each tree's nodes are concatenated into one set of arrays (feature, threshold, left, right,
value) with per-tree root offsets. That is everything prediction needs, it stores in
safetensors, and it does not depend on sklearn's private pickled classes.
"""

from __future__ import annotations

import numpy as np


def _pack(trees: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    offsets = np.cumsum([0] + [len(t["feature"]) for t in trees[:-1]]).astype(np.int64)
    packed = {key: np.concatenate([t[key] for t in trees]) for key in
              ("feature", "threshold", "missing_left", "value")}
    # children are stored as absolute node indices; -1 marks a leaf
    packed["left"] = np.concatenate([np.where(t["left"] >= 0, t["left"] + o, -1)
                                     for t, o in zip(trees, offsets)]).astype(np.int64)
    packed["right"] = np.concatenate([np.where(t["right"] >= 0, t["right"] + o, -1)
                                      for t, o in zip(trees, offsets)]).astype(np.int64)
    packed["roots"] = offsets
    return packed


def forest_from_sklearn(forest, n_classes: int) -> dict[str, np.ndarray]:
    """Random forest -> arrays; leaf values are class-probability rows (n_classes wide)."""
    trees = []
    for est in forest.estimators_:
        t = est.tree_
        value = t.value[:, 0, :].astype(np.float64)
        value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-12)
        full = np.zeros((t.node_count, n_classes))
        full[:, est.classes_.astype(np.int64)] = value
        trees.append({"feature": t.feature.astype(np.int64),
                      "threshold": t.threshold.astype(np.float64),
                      "missing_left": np.zeros(t.node_count, np.uint8),
                      "left": t.children_left.astype(np.int64),
                      "right": t.children_right.astype(np.int64), "value": full})
    return _pack(trees)


def hist_boosting_from_sklearn(model, n_classes: int) -> dict[str, np.ndarray]:
    """HistGradientBoostingClassifier -> arrays; leaf values are raw logit increments."""
    trees, tree_class = [], []
    for iteration in model._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported in saved heads")
            leaf = nodes["is_leaf"].astype(bool)
            trees.append({"feature": np.where(leaf, -2, nodes["feature_idx"].astype(np.int64)),
                          "threshold": nodes["num_threshold"].astype(np.float64),
                          "missing_left": nodes["missing_go_to_left"].astype(np.uint8),
                          "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                          "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                          "value": nodes["value"].astype(np.float64)[:, None]})
            tree_class.append(k)
    packed = _pack(trees)
    packed["tree_class"] = np.asarray(tree_class, np.int64)
    packed["baseline"] = np.asarray(model._baseline_prediction, np.float64).reshape(-1)
    return packed


def tree_ensemble_values(trees: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Leaf value of every tree for every row: shape (n_trees, n_rows, value_width)."""
    X = np.asarray(X, dtype=np.float32).astype(np.float64)  # sklearn splits on float32 inputs
    feature, threshold = trees["feature"], trees["threshold"]
    left, right, missing_left = trees["left"], trees["right"], trees["missing_left"]
    rows = np.arange(len(X))
    node = np.repeat(trees["roots"][:, None], len(X), axis=1)  # (n_trees, n_rows)
    while True:
        inner = left[node] >= 0
        if not inner.any():
            break
        f = np.where(inner, feature[node], 0)
        x = X[rows[None, :].repeat(len(node), 0), f]
        go_left = np.where(np.isnan(x), missing_left[node] == 1, x <= threshold[node])
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)
    return trees["value"][node]
