"""Text readers (.txt/.csv) with clear errors, and the Debian fortunes loader on real files."""

from __future__ import annotations

from collections import Counter

import pytest

from transferkit.text import (
    FORTUNE_CATEGORIES,
    FORTUNES_DIR,
    fortune_categories,
    load_fortunes,
    read_fortune_file,
    read_texts,
)


def test_txt_one_text_per_line_with_file_line_ids(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("first text\n\n   \nsecond text  \nthird\n")
    data = read_texts(path)
    assert data.texts == ["first text", "second text", "third"]
    assert data.ids == [f"{path}:1", f"{path}:4", f"{path}:5"]
    assert data.labels is None


def test_csv_columns_labels_quotes_and_skipped_rows(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('body,topic,extra\n"great food, tasty",food,1\n"multi\nline text",tech,2\n'
                    ',food,3\nlast one,tech,4\n')
    data = read_texts(path, text_column="body", label_column="topic")
    assert data.texts == ["great food, tasty", "multi\nline text", "last one"]
    assert data.labels == ["food", "tech", "tech"]
    assert data.ids == [f"{path}:2", f"{path}:3", f"{path}:6"]
    assert data.failures == [(f"{path}:5", "empty text")]
    assert data.classes == ["food", "tech"]
    # the label column is optional unless labels are required
    assert read_texts(path, text_column="body").labels is None


def test_csv_semicolon_and_tab_dialects(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("text;label\nhello there;a\ngood bye;b\n")
    assert read_texts(path).labels == ["a", "b"]


@pytest.mark.parametrize("content,kwargs,match", [
    ("", {}, "empty CSV file"),
    ("text,label\n", {}, "no texts found"),
    ("text,label\n,a\n", {}, r"no texts found \(.*empty text"),
    ("body,label\nhi,a\n", {}, "no column 'text' \\(columns: body, label\\)"),
    ("text,cat\nhi,a\n", {"require_labels": True}, "no label column 'label'"),
])
def test_csv_errors_name_the_file(tmp_path, content, kwargs, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        read_texts(path, **kwargs)
    assert str(path) in str(err.value)


def test_missing_folder_binary_and_txt_label_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: text file not found"):
        read_texts(tmp_path / "nope.csv")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_texts(tmp_path)
    (tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt: no texts found \(.*latin.txt:1: not UTF-8"):
        read_texts(tmp_path / "latin.txt")
    (tmp_path / "plain.txt").write_text("a\n")
    with pytest.raises(ValueError, match="labels are needed"):
        read_texts(tmp_path / "plain.txt", require_labels=True)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt: no texts found"):
        read_texts(tmp_path / "empty.txt")


def test_fortune_files_are_real_and_parsed():
    cats = fortune_categories()
    assert set(FORTUNE_CATEGORIES) <= set(cats)
    assert all(cats[c] >= 140 for c in FORTUNE_CATEGORIES)
    assert not any(name.endswith((".dat", ".u8")) for name in cats)
    entries = read_fortune_file(FORTUNES_DIR / "startrek")
    assert len(entries) == cats["startrek"] > 200
    assert all("%" != e and "\n" not in e for e in entries)
    assert sum("Spock" in e or "Kirk" in e for e in entries) > 20
    # `law` holds doubly mis-decoded UTF-8 ("HereÃ¢ÂÂs"); the reader repairs it
    law = read_fortune_file(FORTUNES_DIR / "law")
    assert not any("Ã" in e for e in law)
    assert any("Here\u2019s the thing about lawyers" in e for e in law)


def test_load_fortunes_balanced_deterministic_and_deduplicated():
    data = load_fortunes(["startrek", "food", "sports"], max_per_category=40, seed=1)
    assert Counter(data.labels) == {"startrek": 40, "food": 40, "sports": 40}
    assert len(set(data.texts)) == len(data.texts)
    assert all(20 <= len(t) <= 1000 for t in data.texts)
    assert data.ids[0].startswith("fortunes/startrek#")
    again = load_fortunes(["startrek", "food", "sports"], max_per_category=40, seed=1)
    assert again.texts == data.texts
    other = load_fortunes(["startrek", "food", "sports"], max_per_category=40, seed=2)
    assert other.texts != data.texts
    full = load_fortunes()
    assert set(full.labels) == set(FORTUNE_CATEGORIES) and len(full) > 5000


def test_load_fortunes_unknown_category_is_clear():
    with pytest.raises(FileNotFoundError, match="no such fortunes category"):
        load_fortunes(["startrek", "klingon-opera"])
