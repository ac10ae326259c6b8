"""Shared helpers: crash-safe writes and manifest reading."""

from __future__ import annotations

import json

import pytest

from transferkit.utils import (
    atomic_path,
    atomic_write_text,
    peek_format,
    read_manifest,
    write_manifest,
)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "model.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("killed mid-save")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "model"
    for version in ("1", "2"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text(version)
    assert (target / "weights").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_read_manifest_names_the_file_and_the_problem(tmp_path):
    fmt = "transferkit-head/1"
    with pytest.raises(FileNotFoundError, match=r"not a saved head \(no head.json\)"):
        read_manifest(tmp_path, "head.json", "head", fmt)
    (tmp_path / "head.json").write_text("{broken")
    with pytest.raises(ValueError, match="head.json: not valid JSON"):
        read_manifest(tmp_path, "head.json", "head", fmt)
    (tmp_path / "head.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ValueError, match="unsupported format 'other/9'"):
        read_manifest(tmp_path, "head.json", "head", fmt)
    (tmp_path / "head.json").write_text(json.dumps({"a": 1}))  # no format: refused too
    with pytest.raises(ValueError, match="unsupported format None"):
        read_manifest(tmp_path, "head.json", "head", fmt)
    write_manifest(tmp_path, "head.json", fmt, {"a": 1, "format": "ignored"})
    assert read_manifest(tmp_path, "head.json", "head", fmt) == {"format": fmt, "a": 1}
    assert peek_format(tmp_path, ("missing.json", "head.json")) == fmt
