"""Heads on feature matrices: real data (scikit-learn's bundled 8x8 digits), no images."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

from transferkit.errors import InvalidOptionError, NotFittedError
from transferkit.heads import list_heads, load_head, make_head, save_head

FAST = {"linear": {"epochs": 60}, "mlp": {"epochs": 30, "hidden": 64},
        "logreg": {}, "random_forest": {"n_estimators": 60},
        "gradient_boosting": {"max_iter": 25}}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    return X[:700].astype(np.float32), names[y[:700]], X[700:1000].astype(np.float32), \
        names[y[700:1000]]


@pytest.mark.parametrize("name", list_heads())
def test_head_learns_and_round_trips_without_pickle(name, digits, tmp_path):
    X, y, X_test, y_test = digits
    head = make_head(name, **FAST[name]).fit(X, y)
    assert set(head.classes_) == set(y)
    accuracy = float((head.predict(X_test) == y_test).mean())
    assert accuracy > 0.8, f"{name}: {accuracy:.2f}"  # chance is 0.1
    proba = head.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)

    saved = save_head(head, tmp_path / "head")
    assert sorted(p.name for p in saved.iterdir()) == ["head.json", "head.safetensors"]
    assert b"pickle" not in (saved / "head.json").read_bytes()
    loaded = load_head(saved)
    np.testing.assert_array_equal(loaded.predict(X_test), head.predict(X_test))
    np.testing.assert_allclose(loaded.predict_proba(X_test), proba, rtol=1e-6, atol=1e-7)
    assert clone(head).get_params() == head.get_params()


@pytest.mark.parametrize("name", ["logreg", "gradient_boosting", "linear"])
def test_binary_problems_give_two_columns(name, digits):
    X, y, X_test, y_test = digits
    head = make_head(name, **FAST[name]).fit(X, y == "seven")
    proba = head.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    assert (head.predict(X_test) == (y_test == "seven")).mean() > 0.9


def test_tree_heads_match_sklearn_exactly(digits):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from threadpoolctl import threadpool_limits

    X, y, X_test, _ = digits
    ours = make_head("random_forest", n_estimators=15, random_state=3).fit(X, y)
    ref = RandomForestClassifier(15, random_state=3).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X_test), ref.predict_proba(X_test), atol=1e-12)
    ours = make_head("gradient_boosting", max_iter=10).fit(X, y)
    with threadpool_limits(1):  # OpenMP contention on a shared 2-core machine
        ref = HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=15,
                                             early_stopping=False, random_state=0).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X_test), ref.predict_proba(X_test), atol=1e-9)


def test_torch_heads_record_validation_history(digits):
    X, y, X_test, y_test = digits
    head = make_head("linear", epochs=12).fit(X, y, X_val=X_test, y_val=y_test)
    assert [row["epoch"] for row in head.history_] == list(range(1, 13))
    assert head.history_[-1]["val_accuracy"] > 0.7
    assert head.history_[-1]["train_loss"] < head.history_[0]["train_loss"]


def test_bad_inputs_are_named(digits, tmp_path):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="unknown head"):
        make_head("svm")
    with pytest.raises(NotFittedError, match="LogRegHead is not fitted yet"):
        save_head(make_head("logreg"), tmp_path / "h")
    with pytest.raises(NotFittedError, match="LogRegHead is not fitted yet"):
        make_head("logreg").predict(X)
    with pytest.raises(InvalidOptionError, match="does not take C_value; it accepts C"):
        make_head("logreg", C_value=1.0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        make_head("logreg").fit(X[:5], ["a"] * 5)
    head = make_head("logreg").fit(X, y)
    with pytest.raises(ValueError, match="expects 64 features"):
        head.predict(X[:, :10])
    with pytest.raises(FileNotFoundError, match="no head.json"):
        load_head(tmp_path)
