"""Bad text inputs: one line per bad row, never a traceback, never a half-written artefact."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from transferkit.cli import app
from transferkit.data import failure_report_path, read_failure_report
from transferkit.features import Embeddings
from transferkit.text import read_texts


@pytest.fixture()
def messy_csv(tmp_path):
    """Good rows mixed with an empty text, Latin-1 bytes, a field over the csv module's size
    limit, and a row with more cells than the header."""
    path = tmp_path / "messy.csv"
    rows = [b"text,label", b"the cat sat on the mat,pets", b",pets",
            b"caf\xe9 au lait,food", b'"' + b"x" * 140_000 + b'",big',
            b"dogs chase cats,pets,extra", b"bread and butter,food"]
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def test_bad_rows_are_skipped_one_line_each(messy_csv):
    data = read_texts(messy_csv)
    assert data.texts == ["the cat sat on the mat", "dogs chase cats", "bread and butter"]
    reasons = dict(data.failures)
    assert reasons[f"{messy_csv}:3"] == "empty text"
    assert reasons[f"{messy_csv}:4"] == "not UTF-8 text (byte 0xe9 at column 4)"
    assert reasons[f"{messy_csv}:5"].startswith("malformed CSV row (field larger than field")
    assert len(reasons) == 3
    assert [i.rsplit(":", 1)[1] for i in data.ids] == ["2", "6", "7"]


def test_txt_lines_that_are_not_utf8_are_skipped(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"first line\nsecond \xff\xfe line\n\nthird line\n")
    data = read_texts(path)
    assert data.texts == ["first line", "third line"]
    assert data.failures == [(f"{path}:2", "not UTF-8 text (byte 0xff at column 8)")]


def test_cli_lists_bad_rows_and_writes_them_beside_the_output(messy_csv, tmp_path):
    output = tmp_path / "texts.parquet"
    result = CliRunner().invoke(app, ["embed", "--text", str(messy_csv), "--encoder", "tfidf",
                                      "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert result.exception is None and "Traceback" not in result.output
    assert f"skipped 3 text row(s) (all listed in {failure_report_path(output)})" \
        in result.output
    assert f"{messy_csv}:4: not UTF-8 text" in result.output
    assert len(Embeddings.load(output)) == 3
    rows = read_failure_report(failure_report_path(output))
    assert [r["path"].rsplit(":", 1)[1] for r in rows] == ["3", "4", "5"]


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8" * 50, b"",
                                     b"body\nno text column here\n"])
def test_unusable_file_is_one_error_line_and_keeps_the_old_output(content, messy_csv,
                                                                   tmp_path):
    output = tmp_path / "texts.parquet"
    runner = CliRunner()
    assert runner.invoke(app, ["embed", "--text", str(messy_csv), "--encoder", "tfidf",
                               "-o", str(output)]).exit_code == 0
    before = output.read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = runner.invoke(app, ["embed", "--text", str(bad), "--encoder", "tfidf", "-o",
                                 str(output)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), result.output
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
