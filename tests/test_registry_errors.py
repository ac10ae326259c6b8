"""The shared Registry class, the error family and how the CLI tells user errors from bugs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from transferkit.cli._common import friendly_errors
from transferkit.errors import (
    ImageLoadError,
    IncompatibleModelError,
    InvalidOptionError,
    NotFittedError,
    NotInIndexError,
    TransferkitError,
    UnknownNameError,
    check_is_fitted,
)
from transferkit.utils import Registry


def test_registry_registers_lists_describes_and_creates():
    shapes: Registry = Registry("shape")

    @shapes.register("square", description="four equal sides", corners=4)
    def square(side: float = 1.0) -> float:
        return side * side

    shapes.register("circle", lambda radius=1.0: 3.14159 * radius ** 2)
    assert shapes.list() == ["circle", "square"] and shapes.list("sq*") == ["square"]
    assert shapes.create("square", side=3) == 9
    assert shapes.get("square").metadata == {"corners": 4}
    assert [e.description for e in shapes.describe()] == ["", "four equal sides"]
    with pytest.raises(InvalidOptionError, match="shape 'square' does not take colour; it "
                                                 "accepts side"):
        shapes.create("square", colour="red")
    with pytest.raises(UnknownNameError, match="unknown shape 'hexagon'; choose from circle, "
                                               "square"):
        shapes.get("hexagon")
    assert "square" in shapes and "hexagon" not in shapes


def test_engines_from_entry_points_load_only_when_asked():
    # Looking up "ray" imports the package that registers it; listing does not.
    code = ("import sys; from transferkit.runtime import ENGINES; "
            "assert 'ray' in ENGINES.list(); "
            "assert 'transferkit.distributed' not in sys.modules; "
            "entry = ENGINES.get('ray'); "
            "assert 'transferkit.distributed' in sys.modules; "
            "assert entry.metadata['runs'] == 'files'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_errors_share_one_base_and_keep_their_builtin_meaning():
    for cls, builtin in [(IncompatibleModelError, ValueError), (NotFittedError, ValueError),
                         (NotFittedError, AttributeError), (NotInIndexError, KeyError),
                         (UnknownNameError, ValueError), (ImageLoadError, TransferkitError)]:
        assert issubclass(cls, TransferkitError) and issubclass(cls, builtin)
    assert str(NotInIndexError("a.jpg: not in the index")) == "a.jpg: not in the index"
    err = ImageLoadError("a.jpg", "truncated file")
    assert (err.path, err.reason, str(err)) == ("a.jpg", "truncated file", "a.jpg: truncated file")


def test_check_is_fitted_uses_the_trailing_underscore_convention():
    class Estimator:
        def __init__(self) -> None:
            self.alpha = 1.0

    est = Estimator()
    with pytest.raises(NotFittedError, match="this Estimator is not fitted yet"):
        check_is_fitted(est)
    est.coef_ = [1.0]
    check_is_fitted(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(est, "intercept_")


def test_cli_turns_user_errors_into_one_line_but_lets_bugs_through(capsys):
    @friendly_errors
    def fails(exc: Exception) -> None:
        raise exc

    for exc in (ImageLoadError("x.png", "[not] an image"), FileNotFoundError("y: missing"),
                ValueError("bad value")):
        with pytest.raises(typer.Exit) as stop:
            fails(exc)
        assert stop.value.exit_code == 2
    assert "x.png: [not] an image" in capsys.readouterr().err  # markup in messages kept as is
    with pytest.raises(KeyError):  # a bug keeps its traceback
        fails(KeyError("column"))


def test_every_estimator_says_not_fitted_the_same_way():
    import numpy as np

    from transferkit.autoencoders import ConvAutoencoder, PCAAutoencoder
    from transferkit.heads import make_head
    from transferkit.text import create_text_encoder

    images = np.zeros((2, 28, 28), np.uint8)
    calls = [lambda: PCAAutoencoder(4).transform(images),
             lambda: ConvAutoencoder().transform(images),
             lambda: make_head("linear").predict_proba(np.zeros((2, 3))),
             lambda: create_text_encoder("tfidf").transform(["a text"])]
    for call in calls:
        with pytest.raises(NotFittedError, match="is not fitted yet: call fit"):
            call()
