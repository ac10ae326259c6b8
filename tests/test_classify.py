"""ImageNet classification of the bundled photos, through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from transferkit.backbones import imagenet_labels
from transferkit.data import load_image
from transferkit.features import preprocess_images


def _top5(model, path):
    batch = preprocess_images([load_image(path)], model)
    return [imagenet_labels()[i] for i, _ in model.predict_topk(batch, k=5)[0]]


def test_cat_photo_is_a_cat(lite0, photos_dir, cat_classes):
    assert _top5(lite0, photos_dir / "chelsea.jpg")[0] in cat_classes


def test_coffee_photo_is_espresso_or_cup(lite0, photos_dir):
    top5 = _top5(lite0, photos_dir / "coffee.jpg")
    assert top5[0] in {"espresso", "cup", "coffee mug"}
    assert {"espresso", "cup"} & set(top5)


def test_cli_classify_json_and_bad_file(photos_dir, tmp_path, cat_classes):
    bad = tmp_path / "fake.jpg"
    bad.write_text("this is text, not a JPEG")
    result = subprocess.run(
        [sys.executable, "-m", "transferkit", "classify", str(photos_dir / "chelsea.jpg"),
         str(photos_dir / "coffee.jpg"), str(bad), "--json", "-k", "5"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    by_name = {r["path"].rsplit("/", 1)[-1]: r["top_k"] for r in payload["results"]}
    assert by_name["chelsea.jpg"][0]["label"] in cat_classes
    assert by_name["coffee.jpg"][0]["label"] == "espresso"
    assert len(by_name["coffee.jpg"]) == 5
    assert payload["failures"] == [{"path": str(bad),
                                    "reason": "not an image (unrecognised format)"}]
    assert "fake.jpg: not an image" in result.stderr


def test_cli_classify_human_output(photos_dir):
    result = subprocess.run(
        [sys.executable, "-m", "transferkit", "classify", str(photos_dir / "coffee.jpg")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1." in result.stdout and "espresso" in result.stdout


def test_cli_classify_missing_file_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "transferkit", "classify", str(tmp_path / "nope.jpg")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "nope.jpg: no such file or folder" in result.stderr
