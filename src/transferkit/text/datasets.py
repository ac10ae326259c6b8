"""Text inputs: .txt (one text per line), .csv (text[,label] columns), Debian fortunes.

Each text gets a stable id ``FILE:LINE`` (1-based line where it starts) so embeddings,
predictions and search hits can be traced back to the source file. A bad row (empty, not
UTF-8, malformed CSV) is skipped with a one-line reason under its id; only a file that yields
no text at all is an error.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FORTUNES_DIR = Path("/usr/share/games/fortunes")
# Bytes that are not UTF-8 survive decoding as lone surrogates (errors="surrogateescape"), so
# the row holding them can be skipped on its own instead of failing the whole file.
_UNDECODED = re.compile("[\udc80-\udcff]")

# Topical categories with >= 140 entries in Debian's `fortunes` package. Left out: mixed bags
# with no topic (fortunes, cookie, miscellaneous, knghtbrd, people, humorists, platitudes,
# wisdom, definitions, art, disclaimer), format-only files (ascii-art, translate-me), jokes
# about groups of people (ethnic) and small files (< 140 entries: debian, goedel, magic,
# medicine, news, paradoxum, pets, pratchett, riddles, tao ...).
FORTUNE_CATEGORIES = (
    "computers", "drugs", "education", "food", "kids", "law", "linux", "literature",
    "love", "men-women", "perl", "politics", "science", "songs-poems", "sports", "startrek",
    "work", "zippy",
)


@dataclass
class TextDataset:
    """Parallel lists of texts, their ids and (optionally) labels; skipped rows with reasons."""

    texts: list[str]
    ids: list[str]
    labels: list[str] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels or []))

    def subset(self, indices) -> TextDataset:
        idx = [int(i) for i in indices]
        labels = [self.labels[i] for i in idx] if self.labels is not None else None
        return TextDataset([self.texts[i] for i in idx], [self.ids[i] for i in idx], labels)


def _read_text_file(path: Path, errors: str = "strict") -> str:
    """The file as text; ``errors="surrogateescape"`` keeps undecodable bytes for
    :func:`_not_utf8` to find row by row."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: text file not found")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; expected a .txt or .csv file")
    try:
        return path.read_bytes().decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc


def _not_utf8(*values: str | None) -> str | None:
    """The skip reason of a row holding bytes that were not UTF-8, else None."""
    for value in values:
        found = _UNDECODED.search(value or "")
        if found:
            return (f"not UTF-8 text (byte 0x{ord(found.group()) - 0xDC00:02x} at column "
                    f"{found.start() + 1})")
    return None


def read_texts(path: str | os.PathLike, text_column: str = "text",
               label_column: str | None = "label", require_labels: bool = False) -> TextDataset:
    """Read a .txt (one text per line, blank lines skipped) or a .csv with a header row.

    In a CSV the label column is optional unless ``require_labels``; rows with an empty text
    (or empty label when labels are required) are skipped and listed in ``failures``.
    """
    path = Path(path)
    content = _read_text_file(path, errors="surrogateescape")
    if path.suffix.lower() == ".csv":
        data = _parse_csv(path, content, text_column, label_column, require_labels)
    else:
        if require_labels:
            raise ValueError(f"{path}: labels are needed but a .txt file has none; use a CSV "
                             f"with '{text_column}' and '{label_column}' columns")
        data = _parse_lines(path, content)
    if not data.texts:
        reason = "; ".join(f"{i}: {r}" for i, r in data.failures[:3])
        raise ValueError(f"{path}: no texts found" + (f" ({reason})" if reason else
                                                       " (empty file)"))
    return data


def _parse_lines(path: Path, content: str) -> TextDataset:
    """One text per non-blank line; lines that are not UTF-8 are skipped and listed."""
    texts, ids, failures = [], [], []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        bad = _not_utf8(line)
        if bad:
            failures.append((f"{path}:{number}", bad))
        else:
            texts.append(line.strip())
            ids.append(f"{path}:{number}")
    return TextDataset(texts, ids, None, failures)


def _parse_csv(path: Path, content: str, text_column: str, label_column: str | None,
               require_labels: bool) -> TextDataset:
    if not content.strip():
        raise ValueError(f"{path}: empty CSV file (expected a header with a "
                         f"'{text_column}' column)")
    try:
        dialect = csv.Sniffer().sniff(content[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(content.splitlines(keepends=True), dialect=dialect)
    header = reader.fieldnames or []
    if text_column not in header:
        raise ValueError(f"{path}: no column {text_column!r} (columns: {', '.join(header)}); "
                         f"pick one with --text-column")
    has_labels = label_column is not None and label_column in header
    if require_labels and not has_labels:
        raise ValueError(f"{path}: no label column {label_column!r} (columns: "
                         f"{', '.join(header)}); pick one with --label-column")
    texts, ids, labels, failures = [], [], [], []
    for row_id, row in _csv_rows(path, reader, failures):
        text = (row.get(text_column) or "").strip()
        label = (row.get(label_column) or "").strip() if has_labels else None
        reason = _not_utf8(text, label)
        if reason:
            failures.append((row_id, reason))
        elif not text:
            failures.append((row_id, "empty text"))
        elif has_labels and require_labels and not label:
            failures.append((row_id, "empty label"))
        else:
            texts.append(text)
            ids.append(row_id)
            labels.append(label)
    return TextDataset(texts, ids, labels if has_labels else None, failures)


def _csv_rows(path: Path, reader: csv.DictReader, failures: list[tuple[str, str]]):
    """(``FILE:LINE``, row) pairs; a row the csv module cannot parse (a field over its size
    limit, say) is listed in ``failures`` and reading goes on with the next line (every
    ``next`` consumes at least one line of a finite list, so this ends)."""
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            failures.append((f"{path}:{start}", f"malformed CSV row ({exc})"))
            line = start  # the reader does not count the line it gave up on
            continue
        line = reader.line_num
        yield f"{path}:{start}", row


def read_fortune_file(path: str | os.PathLike) -> list[str]:
    """Entries of one strfile-format file (separated by lines holding only ``%``).

    Whitespace runs (indentation, line breaks) become single spaces: the encoders see prose.
    """
    path = Path(path)
    content = _read_text_file(path)
    entries = re.split(r"^%\s*$", content, flags=re.MULTILINE)
    return [_fix_mojibake(" ".join(e.split())) for e in entries if e.strip()]


def _fix_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as Latin-1 (once or twice): a few fortunes have ``Ã¢ÂÂ``."""
    while "Ã" in text or "Â" in text or "â\x80" in text:
        try:
            fixed = text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            break
        if fixed == text:
            break
        text = fixed
    return text


def _dedupe_key(text: str) -> str:
    # Same quote with other quote marks/spacing/case counts as a duplicate.
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def fortune_categories(root: str | os.PathLike = FORTUNES_DIR) -> dict[str, int]:
    """Every plain category file under ``root`` with its entry count (no .dat/.u8, no links)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: fortunes folder not found (apt-get install fortunes)")
    out = {}
    for path in sorted(root.iterdir()):
        if path.is_file() and not path.is_symlink() and not path.suffix:
            out[path.name] = len(read_fortune_file(path))
    return out


def load_fortunes(categories: list[str] | tuple[str, ...] | None = None,
                  max_per_category: int | None = None, min_chars: int = 20,
                  max_chars: int | None = 1000, root: str | os.PathLike = FORTUNES_DIR,
                  seed: int = 0) -> TextDataset:
    """Debian fortunes as a labelled text set: label = category file name.

    Default categories are :data:`FORTUNE_CATEGORIES`. Entries shorter than ``min_chars`` or
    longer than ``max_chars``, repeats within a category and entries found in more than one
    category (compared ignoring case, punctuation and spacing) are dropped;
    ``max_per_category`` keeps a seeded random sample of each category (balanced classes).
    """
    import numpy as np

    root = Path(root)
    categories = list(categories or FORTUNE_CATEGORIES)
    per_cat: dict[str, list[tuple[int, str]]] = {}
    for name in categories:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such fortunes category (apt-get install "
                                    f"fortunes; see fortune_categories())")
        per_cat[name] = list(enumerate(read_fortune_file(path), 1))
    counts = Counter(key for entries in per_cat.values()
                     for key in {_dedupe_key(t) for _, t in entries})
    rng = np.random.default_rng(seed)
    texts, ids, labels = [], [], []
    for name, entries in per_cat.items():
        seen: set[str] = set()
        keep = []
        for number, text in entries:
            key = _dedupe_key(text)
            if (len(text) < min_chars or (max_chars and len(text) > max_chars)
                    or counts[key] > 1 or key in seen):
                continue
            seen.add(key)
            keep.append((number, text))
        if max_per_category is not None and len(keep) > max_per_category:
            chosen = sorted(rng.choice(len(keep), size=max_per_category, replace=False))
            keep = [keep[i] for i in chosen]
        for number, text in keep:
            texts.append(text)
            ids.append(f"fortunes/{name}#{number}")
            labels.append(name)
    return TextDataset(texts, ids, labels)
