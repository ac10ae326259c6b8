"""Every file under an input is accounted for, and one pixel limit guards every loader.

The tricky folder is written at run time from real encoders (Pillow, pillow-heif, libtiff):
embedded + skipped + ignored must equal the files on disk, each with the right reason, and
stderr must stay short (no libtiff or Pillow chatter).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tricky_files import write_big_jpeg, write_tricky_folder
from PIL import Image

from transferkit.data import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    describe_ignored,
    failure_report_path,
    load_image,
    load_image_bytes,
    read_failure_report,
    scan_images,
    write_failure_report,
)
from transferkit.features import embed_folder

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def tricky(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("tricky")
    return root, write_tricky_folder(root)


def _relative(root: Path, paths) -> set[str]:
    return {str(Path(p).relative_to(root)) for p in paths}


def _by_outcome(expected: dict, outcome: str) -> set[str]:
    return {name for name, e in expected.items() if e.outcome == outcome}


def test_every_file_is_embedded_skipped_or_ignored(tricky, lite0):
    root, expected = tricky
    result = embed_folder(root, lite0, batch_size=8, num_workers=2, engine="torch",
                          show_progress=False)
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    embedded = _relative(root, result.paths)
    skipped = {str(Path(p).relative_to(root)): reason for p, reason in result.failures}
    ignored = _relative(root, result.ignored)
    assert len(on_disk) == len(embedded) + len(skipped) + len(ignored) == len(expected)
    assert embedded == _by_outcome(expected, "embedded")
    assert set(skipped) == _by_outcome(expected, "skipped")
    assert ignored == _by_outcome(expected, "ignored")
    for name, reason in skipped.items():
        assert expected[name].reason in reason, (name, reason)
        assert "\n" not in reason
    assert describe_ignored(result.ignored) == (
        "ignored 4 files (not images): (hidden) 1, (no extension) 1, .md 1, .txt 1")


def test_cli_writes_the_full_list_beside_the_output_and_keeps_stderr_short(tricky, tmp_path):
    root, expected = tricky
    output = tmp_path / "tricky.parquet"
    env = {**os.environ, "PYTHONPATH": str(SRC), "TRANSFERKIT_QUIET": "1"}
    result = subprocess.run([sys.executable, "-m", "transferkit", "embed", str(root), "-o",
                             str(output), "--engine", "torch", "--workers", "2"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    n_skipped = len(_by_outcome(expected, "skipped"))
    n_embedded = len(_by_outcome(expected, "embedded"))
    assert f"wrote {n_embedded} embeddings" in result.stdout
    report = failure_report_path(output)
    assert f"skipped {n_skipped} unreadable file(s) (all listed in {report})" in result.stderr
    assert "ignored 4 files (not images)" in result.stderr
    # one header, at most 10 reasons, '... and N more', the ignored line: nothing else
    assert len(result.stderr.strip().splitlines()) <= 13, result.stderr
    assert "Using code not yet in table" in result.stderr  # as the file's reason only
    assert "tempfile.tif" not in result.stderr and "Warning" not in result.stderr
    rows = read_failure_report(report)
    assert {(str(Path(r["path"]).relative_to(root)), r["outcome"]) for r in rows} == {
        (name, e.outcome) for name, e in expected.items() if e.outcome != "embedded"}
    from transferkit.features import Embeddings

    table = Embeddings.load(output)
    assert len(table.failures) == n_skipped and len(table.ignored) == 4


def test_failure_report_is_replaced_and_removed_when_clean(tmp_path):
    output = tmp_path / "out.parquet"
    report = write_failure_report(output, [("a.jpg", "empty file (0 bytes)")], ["notes.txt"])
    assert report == tmp_path / "out.parquet.failures.csv"
    assert read_failure_report(report) == [
        {"path": "a.jpg", "outcome": "skipped", "reason": "empty file (0 bytes)"},
        {"path": "notes.txt", "outcome": "ignored", "reason": "not an image (.txt)"}]
    assert write_failure_report(output, [], []) is None
    assert not report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temp files left


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)  # 144 MP, a few KB on disk
    with pytest.raises(ImageLoadError) as info:
        load_image(huge)
    assert info.value.reason == ("image too large (12000 x 12000 = 144,000,000 pixels > "
                                 "limit 89,478,485)")
    assert DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS == 89_478_485
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(ImageLoadError, match=r"100 x 100 = 10,000 pixels > limit 5,000\)"):
        load_image(small, max_pixels=5000)
    assert load_image(huge, max_pixels=150_000_000).size == (12000, 12000)


def test_jpeg_over_the_limit_is_read_when_dct_scaling_brings_it_under(tmp_path):
    path = tmp_path / "big.jpg"
    width, height = write_big_jpeg(path)
    assert width * height > DEFAULT_MAX_PIXELS
    assert load_image(path, draft_size=256).size == (-(-width // 8), -(-height // 8))
    assert load_image(path).size == (-(-width // 2), -(-height // 2))  # the least scaling
    with pytest.raises(ImageLoadError, match="even decoded at 1/8 scale"):
        load_image(path, max_pixels=1000)


def test_jpeg_over_twice_pillows_threshold_is_still_scaled(tmp_path):
    path = tmp_path / "bomb.jpg"
    Image.new("L", (14000, 13000), 90).save(path, quality=40)  # Pillow itself refuses this
    assert load_image(path, draft_size=224).size == (1750, 1625)


def test_uploads_and_files_share_the_limit(tmp_path):
    from transferkit.service.uploads import DEFAULT_MAX_IMAGE_PIXELS, UploadError, decode_upload

    assert DEFAULT_MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS
    path = tmp_path / "huge.png"
    Image.new("1", (10000, 9000)).save(path)
    with pytest.raises(ImageLoadError, match="image too large"):
        load_image_bytes(path.read_bytes(), "huge.png")
    with pytest.raises(UploadError) as info:
        decode_upload(path.read_bytes(), "huge.png")
    assert info.value.status_code == 413
    assert "10000 x 9000 = 90,000,000 pixels > limit 89,478,485" in info.value.message


def test_cli_default_matches_the_library():
    from transferkit.cli._common import DEFAULT_MAX_PIXELS as CLI_DEFAULT

    assert CLI_DEFAULT == DEFAULT_MAX_PIXELS


def test_files_are_identified_by_header_not_only_extension(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "picture", format="PNG")
    (tmp_path / "text.jpg").write_text("not really")
    (tmp_path / "notes.txt").write_text("a note")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]")
    scan = scan_images(tmp_path)
    assert [p.name for p in scan.images] == ["picture", "text.jpg"]
    assert [p.name for p in scan.ignored] == [".git", "notes.txt"]  # a hidden folder: once
    assert scan.ignored_by_kind() == {"(hidden)": 1, ".txt": 1}
