"""Similar-image search commands: ``index build/add/remove/info/compact``, ``search``,
``dedupe``, ``bench-search``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from transferkit.cli._common import (
    MAX_PIXELS,
    console,
    engine_option,
    friendly_errors,
    precision_option,
    print_runtime,
    report_failures,
    write_and_report_failures,
)
from transferkit.errors import NotInIndexError

index_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Build and edit a persistent similar-image index (one file).")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search")(search)
    app.command("dedupe")(dedupe)
    app.command("bench-search")(bench_search)


def _print(text: str) -> None:
    console.print(text, highlight=False, markup=False)


@index_app.command("build")
@friendly_errors
def build(
    sources: list[Path] | None = typer.Argument(None, help="Folders/images to index, or one "
                                                "embeddings parquet written by `transferkit "
                                                "embed`."),
    output: Path = typer.Option(..., "--output", "-o", help="Index file to write."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    checkpoint: Path | None = typer.Option(None, help="Local weights for a timm architecture."),
    image_size: int | None = typer.Option(None, help="Run the backbone at this resolution."),
    metric: str = typer.Option("cosine", help="cosine or l2."),
    method: str = typer.Option("hnsw", help="hnsw (approximate, fast) or exact (brute force)."),
    m: int = typer.Option(32, "--M", help="HNSW links per node."),
    ef_construction: int = typer.Option(100, help="HNSW build-time beam width."),
    ef_search: int = typer.Option(64, help="HNSW query-time beam width (recall vs speed)."),
    batch_size: int = typer.Option(32, min=1),
    workers: int | None = typer.Option(None, help="Decode threads (default: one per core)."),
    chunk_size: int = typer.Option(1024, min=1, help="Images decoded per chunk (memory bound)."),
    engine: str = engine_option(),
    precision: str = precision_option(),
    # -- texts instead of images: `index build --text FILE.csv|.txt -o INDEX` ------------------
    text: Path | None = typer.Option(None, "--text", help="Index the texts of a .txt (one per "
                                                          "line) or .csv file instead of images."),
    encoder: str | None = typer.Option(None, "--encoder", help="With --text: minilm "
                                       "(default), tfidf, glove or glove-idf; with --audio: "
                                       "mfcc, logmel (default), wavelet or spectrogram."),
    text_column: str = typer.Option("text", help="With --text: CSV column of the texts."),
    audio: Path | None = typer.Option(None, "--audio", help="Index the audio clips under this "
                                                            "folder instead of images."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Embed every image under SOURCES (or texts with --text, clips with --audio) and write an
    index (atomic); skipped and ignored files are listed in OUTPUT.failures.csv."""
    hnsw = dict(M=m, ef_construction=ef_construction, ef_search=ef_search)
    if text is not None:
        from transferkit.cli.text import run_index_build_text

        return run_index_build_text(text, output, encoder or "minilm", metric, method,
                                    text_column, **hnsw)
    if audio is not None:
        from transferkit.cli.audio import run_index_build_audio

        return run_index_build_audio(audio, output, encoder, metric, method, **hnsw)
    if not sources:
        raise ValueError("index build: give image folders/files, or --text FILE for texts")
    from transferkit.backbones import create
    from transferkit.search import build_index, describe_spec

    params = dict(metric=metric, method=method, M=m, ef_construction=ef_construction,
                  ef_search=ef_search, output=output)
    if len(sources) == 1 and sources[0].suffix == ".parquet":
        index = build_index(sources[0], **params)
    else:
        model = create(backbone, checkpoint=checkpoint, image_size=image_size)
        index = build_index(sources, model, batch_size=batch_size, num_workers=workers,
                            chunk_size=chunk_size, max_pixels=max_pixels, engine=engine,
                            precision=precision, **params)
    print_runtime(index.runtime)
    _print(f"indexed {len(index)} images with {describe_spec(index.spec)} "
           f"({method}, {metric}) -> {output}")
    write_and_report_failures(output, index.failures, index.ignored)


@index_app.command("add")
@friendly_errors
def add(
    index_path: Path = typer.Argument(..., metavar="INDEX", help="Index file to update."),
    files: list[Path] | None = typer.Argument(None, help="Images or folders to add."),
    batch_size: int = typer.Option(32, min=1),
    workers: int | None = typer.Option(None, help="Decode threads (default: one per core)."),
    engine: str = engine_option(),
    precision: str = precision_option(),
    text: Path | None = typer.Option(None, "--text", help="Text index: add the texts of this "
                                                          ".txt (one per line) or .csv."),
    text_column: str = typer.Option("text", help="With --text: CSV column of the texts."),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Embed and add images (or texts, --text) without rebuilding; already-indexed files are
    skipped. Re-running after an interruption adds only what is still missing."""
    from transferkit.cli.text import run_index_add_text
    from transferkit.data import scan_images
    from transferkit.search import ImageIndex
    from transferkit.text import is_text_index

    if is_text_index(index_path) or text is not None:
        if files:
            raise ValueError(f"{index_path}: give texts with --text FILE for a text index, "
                             f"images for an image index, not both")
        return run_index_add_text(index_path, text, text_column)
    if not files:
        raise ValueError("index add: give images or folders to add (or --text FILE for a "
                         "text index)")
    index = ImageIndex.load(index_path)
    scan = scan_images(files)
    index.ignored = [str(p) for p in scan.ignored]
    ids = index.add_paths(scan.images, batch_size=batch_size, num_workers=workers,
                          max_pixels=max_pixels, engine=engine, precision=precision)
    print_runtime(index.runtime)
    index.save()
    first = f" (ids {int(ids[0])}..{int(ids[-1])})" if len(ids) else ""
    _print(f"added {len(ids)} images{first}; index now holds {len(index)}")
    if index.skipped:
        _print(f"skipped {len(index.skipped)} already-indexed file(s)")
    write_and_report_failures(index_path, index.failures, index.ignored)


@index_app.command("remove")
@friendly_errors
def remove(
    index_path: Path = typer.Argument(..., metavar="INDEX", help="Index file to update."),
    ids: list[str] = typer.Argument(..., help="Ids (from `search`) or indexed file paths."),
) -> None:
    """Remove entries (tombstones; the index compacts itself past its rebuild threshold).
    In a text index, give ids or the exact indexed texts."""
    from transferkit.cli.text import run_index_remove_text
    from transferkit.search import ImageIndex
    from transferkit.text import is_text_index

    if is_text_index(index_path):
        return run_index_remove_text(index_path, ids)
    index = ImageIndex.load(index_path)
    numeric = [int(i) for i in ids if i.lstrip("-").isdigit()]
    paths = [i for i in ids if not i.lstrip("-").isdigit()]
    missing = [i for i in numeric if i not in index.index]
    if missing:
        raise NotInIndexError(f"{index_path}: ids not in the index: {missing[:10]}")
    removed = index.remove(numeric + [index.id_of(p) for p in paths])
    index.save()
    _print(f"removed {removed}; index now holds {len(index)} "
           f"({index.index.num_tombstones} tombstones)")


@index_app.command("info")
@friendly_errors
def info(
    index_path: Path = typer.Argument(..., metavar="INDEX"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show size, parameters and the embedding model of an index (reads the header only)."""
    from transferkit.search import VectorIndex, describe_spec

    header = VectorIndex.read_header(index_path)
    if as_json:
        print(json.dumps(header, indent=2))
        return
    p = header["params"]
    _print(f"{index_path}: {header['size']} items, {header['tombstones']} tombstones")
    _print(f"  {p['method']} / {p['metric']}, dim {p['dim']}, M={p['M']}, "
           f"efConstruction={p['ef_construction']}, efSearch={p['ef_search']}")
    _print(f"  model: {describe_spec(header.get('spec'))}")
    _print(f"  library: {header['library']}")


@index_app.command("compact")
@friendly_errors
def compact(index_path: Path = typer.Argument(..., metavar="INDEX")) -> None:
    """Rebuild the ANN structure from live entries (drops tombstones now)."""
    from transferkit.search import VectorIndex

    index = VectorIndex.load(index_path)
    dropped = index.num_tombstones
    index.compact()
    index.save(index_path)
    _print(f"compacted {index_path}: dropped {dropped} tombstones, {len(index)} items")


@friendly_errors
def search(
    index_path: Path = typer.Argument(..., metavar="INDEX", help="Index file."),
    query: Path | None = typer.Argument(None, metavar="QUERY_IMAGE", help="Image to look up."),
    k: int = typer.Option(10, "-k", "--top-k", min=1),
    ef_search: int | None = typer.Option(None, help="Override the index's efSearch."),
    sheet: Path | None = typer.Option(None, "--sheet", help="Also save a contact-sheet PNG."),
    as_json: bool = typer.Option(False, "--json"),
    engine: str = engine_option(),
    precision: str = precision_option(),
    # -- texts instead of images: `search TEXT_INDEX --text "query"` ---------------------------
    text: list[str] | None = typer.Option(None, "--text", help="Query a text index with this "
                                                               "text (repeatable)."),
    audio: list[Path] | None = typer.Option(None, "--audio", help="Query an audio index with "
                                                                  "this clip (repeatable)."),
) -> None:
    """The K most similar indexed images to QUERY_IMAGE (or texts to --text "query", clips to
    --audio clip.wav)."""
    from transferkit.cli.text import refuse_image_index, run_search_text

    if text:
        return run_search_text(index_path, text, k, as_json, ef_search)
    if audio:
        from transferkit.cli.audio import run_search_audio

        return run_search_audio(index_path, audio, k, as_json)
    if query is None:
        raise ValueError("search: give a QUERY_IMAGE (or --text \"...\" for a text index)")
    refuse_image_index(index_path)
    from transferkit.search import ImageIndex, contact_sheet

    index = ImageIndex.load(index_path)
    if ef_search is not None:
        index.index.ef_search = ef_search
    hits = index.search_paths([query], k, engine=engine, precision=precision)[0]
    if as_json:
        print(json.dumps({"query": str(query), "hits": [h.to_dict() for h in hits]}, indent=2))
    else:
        for rank, hit in enumerate(hits, 1):
            _print(f"{rank:>3}. {hit.distance:.4f}  [{hit.id}] {hit.path}")
    if sheet is not None:
        contact_sheet(query, hits, sheet, title=f"{query.name} in {index_path.name}")
        if not as_json:
            _print(f"contact sheet -> {sheet}")


@friendly_errors
def dedupe(
    source: Path = typer.Argument(..., help="Folder of images, embeddings parquet, or index."),
    threshold: float | None = typer.Option(None, help="Max distance of a duplicate pair "
                                                       "(cosine distance; default 0.2)."),
    k: int = typer.Option(10, "-k", help="Neighbours checked per image."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-b"),
    image_size: int | None = typer.Option(None, help="Run the backbone at this resolution."),
    as_json: bool = typer.Option(False, "--json"),
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Print groups of near-duplicate images (resized, re-encoded, lightly edited copies)."""
    from transferkit.search import DEFAULT_THRESHOLD, find_duplicates

    report = find_duplicates(source, threshold if threshold is not None else DEFAULT_THRESHOLD,
                             k=k, backbone=backbone, image_size=image_size,
                             max_pixels=max_pixels)
    if as_json:
        print(json.dumps({"threshold": report.threshold, "items": report.num_items,
                          "groups": [g.to_dict() for g in report],
                          "failures": [{"path": p, "reason": r} for p, r in report.failures],
                          "ignored": report.ignored}, indent=2))
    else:
        for n, group in enumerate(report, 1):
            _print(f"group {n} ({len(group.items)} images, max distance "
                   f"{group.max_distance:.4f}):")
            for path in group.items:
                _print(f"  {path}")
        _print(f"{len(report)} duplicate group(s) among {report.num_items} images "
               f"(threshold {report.threshold})")
        report_failures(report.failures, report.ignored)


@friendly_errors
def bench_search(
    out_dir: Path = typer.Option(Path("out/bench-search"), "--out-dir", "-o"),
    base: int = typer.Option(60_000, help="Raw-pixel base vectors (Fashion-MNIST train set)."),
    queries: int = typer.Option(10_000, help="Raw-pixel queries (Fashion-MNIST test set)."),
    ef: list[int] = typer.Option([16, 24, 32, 48, 64, 96, 128], "--ef",
                                 help="efSearch values to sweep."),
    m: int = typer.Option(32, "--M"),
    ef_construction: int = typer.Option(100),
    embeddings: bool = typer.Option(True, help="Also benchmark backbone embeddings."),
    emb_base: int = typer.Option(10_000, help="Embedded train images (base)."),
    emb_queries: int = typer.Option(1_000, help="Embedded test images (queries)."),
    image_size: int = typer.Option(64, help="Backbone resolution for the embeddings part."),
    exact_queries: int = typer.Option(1_000, help="Queries timed for brute force (slow)."),
    raw_storage: list[str] = typer.Option(["uint8", "float32"], "--raw-storage",
                                          help="Vector storage(s) for the raw-pixel sweep."),
) -> None:
    """Recall@10 vs queries/s on Fashion-MNIST (one thread): brute force, raw faiss, wrapper."""
    from transferkit.search.bench import (
        format_table,
        overhead_summary,
        run_bench,
        target_summary,
    )

    rows = run_bench(out_dir, n_base=base, n_queries=queries, ef_values=ef, M=m,
                     ef_construction=ef_construction, embeddings=embeddings,
                     emb_base=emb_base, emb_queries=emb_queries, image_size=image_size,
                     exact_queries=exact_queries, raw_storages=raw_storage, log=_print)
    print(format_table(rows))
    print(overhead_summary(rows))
    print(target_summary(rows, "fmnist-784 raw"))
    print(f"plot: {out_dir / 'recall_qps.png'}  rows: {out_dir / 'bench_search.json'}")
