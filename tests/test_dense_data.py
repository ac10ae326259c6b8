"""dense.data: user-format folders and box files, every bad-file case, generated sets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_convert, masks_to_boxes

from transferkit.dense.data import (
    AnnotationError,
    load_boxes,
    load_pair,
    load_segmentation_folder,
    read_mask,
    write_composites,
    write_fixture,
)
from transferkit.errors import ImageLoadError, InvalidOptionError

SPLITS = ("train", "val", "test")


def torchvision_box(mask: np.ndarray) -> tuple[float, ...]:
    xyxy = masks_to_boxes(torch.from_numpy((mask > 0) & (mask != 255))[None])
    xyxy = xyxy + torch.tensor([0.0, 0.0, 1.0, 1.0])  # pixel edges: far edge of the last pixel
    return tuple(box_convert(xyxy, "xyxy", "xywh")[0].tolist())


def save_image(path: Path, size=(20, 16), colour=(90, 140, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def save_mask(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    return path


def square_mask(value: int, shape=(16, 20), ignore: bool = False) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[4:10, 5:12] = value
    if ignore:
        mask[0, :] = 255
    return mask


@pytest.fixture(scope="module")
def fixture_set(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dense") / "fixture"
    return out, write_fixture(out, n=8, n_val=3, n_test=3, size=64, seed=3)


@pytest.fixture(scope="module")
def composites(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dense") / "composites"
    return out, write_composites(out, n_train=12, n_val=4, n_test=4, size=96, seed=5)


# ---------------------------------------------------------------- fixture and round trip


def test_fixture_round_trips_through_both_loaders(fixture_set):
    out, summary = fixture_set
    assert (out / "summary.json").exists()
    assert json.loads((out / "summary.json").read_text())["classes"] == summary["classes"]
    for split, count in zip(SPLITS, (8, 3, 3), strict=True):
        data = load_segmentation_folder(out / split)
        assert (len(data), data.failures) == (count, [])
        assert data.classes == ["background", "trouser", "bag", "ellipse", "triangle"]
        boxes = load_boxes(out / split / "boxes.csv")
        assert (len(boxes), boxes.failures) == (count, [])
        by_image = {b.image.name: b for b in boxes.samples}
        for sample in data.samples:
            image, mask = load_pair(sample, data.n_classes)
            assert image.mode == "RGB" and image.size == (64, 64) and mask.dtype == np.uint8
            labels = set(np.unique(mask)) - {0}
            assert len(labels) == 1  # one object per image
            entry = by_image[sample.image.name]
            assert entry.label == data.classes[labels.pop()]
            assert entry.box == pytest.approx(torchvision_box(mask))
            binary = load_pair(sample, data.n_classes, binary=True)[1]
            assert set(np.unique(binary)) == {0, 1}


def test_fixture_is_deterministic_by_seed(tmp_path, fixture_set):
    out, _ = fixture_set
    again = tmp_path / "again"
    write_fixture(again, n=8, n_val=3, n_test=3, size=64, seed=3)
    for name in ("train/images/00004.png", "train/masks/00004.png", "test/boxes.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    write_fixture(tmp_path / "other", n=8, n_val=3, n_test=3, size=64, seed=4)
    assert ((tmp_path / "other/train/boxes.csv").read_bytes()
            != (out / "train/boxes.csv").read_bytes())


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path, fixture_set):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(InvalidOptionError, match="not a generated dataset"):
        write_fixture(tmp_path, n=2)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    out, _ = fixture_set  # a generated folder may be rewritten in place
    write_fixture(tmp_path / "gen", n=2)
    write_fixture(tmp_path / "gen", n=3)
    assert len(load_segmentation_folder(tmp_path / "gen/train")) == 3


# ---------------------------------------------------------------- segmentation folders


@pytest.mark.parametrize(("value", "ignore"), [(255, False), (1, False), (1, True)])
def test_binary_masks_without_classes_txt(tmp_path, value, ignore):
    save_image(tmp_path / "images/a.png")
    save_mask(tmp_path / "masks/a.png", square_mask(value, ignore=ignore))
    data = load_segmentation_folder(tmp_path)
    assert (data.classes, data.failures, len(data)) == (["background", "foreground"], [], 1)
    mask = load_pair(data.samples[0], data.n_classes)[1]
    assert mask[5, 6] == 1 and mask[12, 2] == 0
    assert mask[0, 0] == (255 if ignore else 0)


def test_classes_txt_and_binary_collapse(tmp_path):
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    save_image(tmp_path / "images/a.jpg")
    mask = square_mask(2, ignore=True)
    mask[12:14, 1:3] = 1
    save_mask(tmp_path / "masks/a.png", mask)
    data = load_segmentation_folder(tmp_path)
    assert data.classes == ["background", "cat", "dog"] and data.failures == []
    assert set(np.unique(load_pair(data.samples[0], 3)[1])) == {0, 1, 2, 255}
    collapsed = load_segmentation_folder(tmp_path, binary=True)
    assert collapsed.classes == ["background", "foreground"]
    assert set(np.unique(load_pair(collapsed.samples[0], collapsed.n_classes,
                                   binary=True)[1])) == {0, 1, 255}


def test_palette_mask_reads_indices(tmp_path):
    mask = Image.fromarray(square_mask(2), mode="L").convert("P")
    mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    mask.save(tmp_path / "m.png")
    assert set(np.unique(read_mask(tmp_path / "m.png", 3))) == {0, 2}


def test_every_bad_pair_is_listed_and_skipped(tmp_path):
    (tmp_path / "classes.txt").write_text("background\ncat\n")
    save_image(tmp_path / "images/good.png")
    save_mask(tmp_path / "masks/good.png", square_mask(1))
    save_image(tmp_path / "images/nomask.png")
    save_image(tmp_path / "images/small.png")
    save_mask(tmp_path / "masks/small.png", np.zeros((8, 8)))
    save_image(tmp_path / "images/classes.png")
    unknown = square_mask(7)
    unknown[12:14, 1:3] = 9
    save_mask(tmp_path / "masks/classes.png", unknown)
    (tmp_path / "images/broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    save_mask(tmp_path / "masks/broken.png", square_mask(1))
    save_image(tmp_path / "images/badmask.png")
    (tmp_path / "masks/badmask.png").write_bytes(b"\x89PNG junk")
    save_image(tmp_path / "images/colour.png")
    Image.new("RGB", (20, 16), (200, 10, 10)).save(tmp_path / "masks/colour.png")

    data = load_segmentation_folder(tmp_path)
    assert [s.image.name for s in data.samples] == ["good.png"]
    reasons = {path.name: reason for path, reason in data.failures}
    assert reasons.keys() == {"nomask.png", "small.png", "classes.png", "broken.jpg",
                              "badmask.png", "colour.png"}
    assert "missing mask" in reasons["nomask.png"]
    assert "mask is 8x8 but its image small.png is 20x16" in reasons["small.png"]
    assert "unknown class index 7, 9" in reasons["classes.png"]
    assert "not an image" in reasons["broken.jpg"]
    assert "unreadable mask" in reasons["badmask.png"]
    assert "colour mask" in reasons["colour.png"]
    assert all("\n" not in reason for reason in reasons.values())


def test_read_mask_and_load_pair_raise_naming_the_file(tmp_path):
    save_mask(tmp_path / "m.png", square_mask(4))
    with pytest.raises(ImageLoadError, match=r"m\.png: unknown class index 4"):
        read_mask(tmp_path / "m.png", 3)
    with pytest.raises(ImageLoadError, match="missing mask"):
        read_mask(tmp_path / "absent.png", 3)


def test_bad_classes_txt_and_missing_images_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images/ folder"):
        load_segmentation_folder(tmp_path)
    save_image(tmp_path / "images/a.png")
    (tmp_path / "classes.txt").write_text("background\n")
    with pytest.raises(AnnotationError, match="classes.txt"):
        load_segmentation_folder(tmp_path)


# ---------------------------------------------------------------- boxes


def test_box_csv_rows_checked_and_largest_box_kept(tmp_path):
    save_image(tmp_path / "img/a.png", size=(40, 30))
    save_image(tmp_path / "img/b.png", size=(40, 30))
    (tmp_path / "img/junk.png").write_bytes(b"junk")
    rows = [["path", "label", "x", "y", "w", "h"],
            ["img/a.png", "cat", "1", "2", "5", "5"],
            ["img/a.png", "dog", "0", "0", "20", "10"],     # larger: this one is kept
            ["img/b.png", "cat", "30", "5", "20", "5"],     # runs 10 px off the right
            ["img/b.png", "cat", "1", "2"],                 # too few fields
            ["img/c.png", "cat", "1", "2", "3", "4"],       # no such image
            ["img/junk.png", "cat", "1", "2", "3", "4"],    # unreadable
            ["img/a.png", "cat", "x", "2", "3", "4"]]       # not a number
    with open(tmp_path / "boxes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    data = load_boxes(tmp_path / "boxes.csv")
    assert [(s.image.name, s.label, s.box) for s in data.samples] == [
        ("a.png", "dog", (0.0, 0.0, 20.0, 10.0))]
    assert data.classes == ["dog"]
    reasons = [f"{path.name} {reason}" for path, reason in data.failures]
    assert any("b.png" in r and "outside the 40x30 image" in r for r in reasons)
    assert any("boxes.csv:5" in r and "bad CSV row: 4 fields" in r for r in reasons)
    assert any("c.png missing image" in r for r in reasons)
    assert any("junk.png" in r for r in reasons)
    assert any("boxes.csv:8" in r and "must be numbers" in r for r in reasons)
    assert len(reasons) == 5


def coco(tmp_path: Path, annotations, images=None) -> Path:
    doc = {"images": images or [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
           "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
           "annotations": annotations}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_keeps_the_largest_object(tmp_path):
    save_image(tmp_path / "a.png", size=(50, 40))
    save_image(tmp_path / "images/b.png", size=(50, 40))  # found in images/ beside the JSON
    path = coco(tmp_path, [
        {"image_id": 1, "category_id": 3, "bbox": [1, 1, 10, 10]},
        {"image_id": 1, "category_id": 4, "bbox": [5, 5, 30, 20]},
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 49, 39], "iscrowd": 1},
        {"image_id": 2, "category_id": 3, "bbox": [2, 3, 4, 5]},
        {"image_id": 2, "category_id": 9, "bbox": [0, 0, 40, 30]}])
    data = load_boxes(path)
    assert sorted((s.image.name, s.label, s.box) for s in data.samples) == [
        ("a.png", "dog", (5.0, 5.0, 30.0, 20.0)), ("b.png", "cat", (2.0, 3.0, 4.0, 5.0))]
    assert data.classes == ["cat", "dog"]
    assert [reason for _, reason in data.failures] == ["bad COCO annotation: unknown category_id 9"]


def test_bad_coco_json_names_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(AnnotationError, match=r"broken\.json: bad COCO JSON"):
        load_boxes(tmp_path / "broken.json")
    (tmp_path / "shape.json").write_text(json.dumps({"images": []}))
    with pytest.raises(AnnotationError, match=r"shape\.json: bad COCO JSON"):
        load_boxes(tmp_path / "shape.json")
    save_image(tmp_path / "a.png")
    data = load_boxes(coco(tmp_path, [], images=[{"id": 1, "file_name": "a.png"}]))
    assert data.samples == [] and data.failures[0][1] == "no object annotated"


# ---------------------------------------------------------------- Tux Paint composites


def sources(out: Path, split: str) -> list[dict[str, str]]:
    with open(out / split / "sources.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_composites_split_by_stamp_and_by_scene(composites):
    out, summary = composites
    assert {s: summary["splits"][s]["images"] for s in SPLITS} == {"train": 12, "val": 4,
                                                                    "test": 4}
    used = {split: sources(out, split) for split in SPLITS}
    for kind, column in (("stamp_names", "stamp"), ("background_names", "background")):
        listed = {split: set(summary["splits"][split][kind]) for split in SPLITS}
        assert not listed["train"] & listed["test"] and not listed["train"] & listed["val"]
        assert not listed["val"] & listed["test"]
        for split in SPLITS:
            assert {row[column] for row in used[split]} <= listed[split]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["splits"]["test"]["stamps"] == summary["splits"]["test"]["stamps"] > 0


def test_composite_masks_boxes_and_classes_agree(composites):
    out, summary = composites
    for split in SPLITS:
        data = load_segmentation_folder(out / split)
        assert data.failures == [] and len(data) == summary["splits"][split]["images"]
        assert data.classes[0] == "background" and data.classes == summary["classes"]
        boxes = {b.image.name: b for b in load_boxes(out / split / "boxes.csv").samples}
        stamp_of = {Path(row["image"]).name: row["stamp"] for row in sources(out, split)}
        for sample in data.samples:
            image, mask = load_pair(sample, data.n_classes)
            assert image.size == (96, 96)
            labels = set(np.unique(mask)) - {0}
            assert len(labels) == 1
            label = data.classes[labels.pop()]
            assert label == stamp_of[sample.image.name].split("/")[0]  # category + 1
            assert boxes[sample.image.name].label == label
            assert boxes[sample.image.name].box == pytest.approx(torchvision_box(mask))


def test_composites_are_deterministic_by_seed(tmp_path, composites):
    out, _ = composites
    # each image depends on (seed, split, index) only: a shorter run repeats the first ones
    again = tmp_path / "again"
    write_composites(again, n_train=3, n_val=1, n_test=2, size=96, seed=5)
    for name in ("train/images/00002.jpg", "test/masks/00001.png", "val/images/00000.jpg"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    for name in ("train/boxes.csv", "test/sources.csv"):
        short = (again / name).read_text().splitlines()
        assert short == (out / name).read_text().splitlines()[:len(short)]
    assert (again / "summary.json").exists()


# ---------------------------------------------------------------- CLI


def test_cli_writes_the_fixture_and_says_where(tmp_path):
    from typer.testing import CliRunner

    from transferkit.cli import app

    runner = CliRunner()
    out = tmp_path / "seg"
    result = runner.invoke(app, ["data", "segmentation", str(out), "--fixture", "--train", "4",
                                 "--val", "2", "--test", "3", "--size", "48"])
    assert result.exit_code == 0, result.output
    assert "train     4 images" in result.output and str(out / "test") in result.output
    assert len(load_segmentation_folder(out / "test")) == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["data", "segmentation", str(tmp_path / "other"), "--fixture"])
    assert refused.exit_code == 2 and "not a generated dataset" in refused.output
