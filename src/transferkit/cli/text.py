"""Text pieces of the CLI.

``text-encoders`` lists the encoders. The ``--text`` branches of ``embed``, ``index build``,
``search``, ``train`` and ``predict`` call the ``run_*`` functions below, so the image
commands only gain a few separated lines each.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from transferkit.cli._common import (
    console,
    err_console,
    friendly_errors,
    write_and_report_failures,
)
from transferkit.errors import NotInIndexError

ENCODER_HELP = ("Text encoder: minilm (pretrained sentence model, 384-d), tfidf, glove "
                "(mean of word vectors, 50-d) or glove-idf.")


def register(app: typer.Typer) -> None:
    app.command("text-encoders")(text_encoders)


@friendly_errors
def text_encoders() -> None:
    """List text encoders usable with --text (embed, index build, search, train)."""
    from transferkit.text import describe_text_encoders

    for entry in describe_text_encoders():
        console.print(f"[bold]{entry.name}[/bold]  {entry.description}")


def _encoder_params(encoder: str, max_features: int | None = None) -> dict:
    return {"max_features": max_features} if encoder == "tfidf" and max_features else {}


def run_embed_text(source: Path, output: Path, encoder: str = "minilm",
                   text_column: str = "text", label_column: str = "label") -> None:
    """`embed --text FILE`: rows named ``FILE:LINE``; a fitted encoder is kept beside."""
    from transferkit.text import embed_texts, encoder_dir_for

    emb, enc = embed_texts(source, encoder, text_column=text_column, label_column=label_column)
    emb.save(output)
    console.print(f"wrote {len(emb)} {enc.spec()['name']} text embeddings of dim {emb.dim} "
                  f"to {output}", highlight=False)
    if enc.requires_fit:
        enc.save(encoder_dir_for(output))
        console.print(f"fitted {enc.spec()['name']} encoder saved to {encoder_dir_for(output)}",
                      highlight=False)
    write_and_report_failures(output, emb.failures, what="text row")


def run_index_build_text(source: Path, output: Path, encoder: str = "minilm",
                         metric: str = "cosine", method: str = "hnsw",
                         text_column: str = "text", **index_params) -> None:
    """`index build --text FILE -o INDEX` (``index_params``: HNSW M, ef_construction...)."""
    from transferkit.text import build_text_index

    index = build_text_index(source, encoder, metric=metric, method=method,
                             text_column=text_column, output=output, **index_params)
    console.print(f"indexed {len(index)} texts with {index.spec['name']} "
                  f"(dim {index.spec['num_features']}, {method}, {metric}) -> {output}",
                  highlight=False)
    write_and_report_failures(output, index.failures, what="text row")


def run_index_add_text(index_path: Path, source: Path | None, text_column: str = "text"
                       ) -> None:
    """`index add TEXT_INDEX --text FILE`: embed with the index's own encoder and append."""
    from transferkit.text import TextIndex, read_texts

    index = TextIndex.load(index_path)  # refuses an image index with a clear message
    if source is None:
        raise ValueError(f"{index_path}: is a text index; add texts with --text FILE")
    data = read_texts(source, text_column=text_column, label_column=None)
    known = set(index.texts)
    new = [t for t in data.texts if t not in known]
    ids = index.add_texts(new)
    index.save()
    first = f" (ids {int(ids[0])}..{int(ids[-1])})" if len(ids) else ""
    console.print(f"added {len(ids)} texts{first}; index now holds {len(index)}",
                  highlight=False, markup=False)
    if len(new) < len(data.texts):
        console.print(f"skipped {len(data.texts) - len(new)} already-indexed text(s)",
                      highlight=False)
    write_and_report_failures(index_path, list(data.failures) + index.failures,
                              what="text row")


def run_index_remove_text(index_path: Path, ids_or_texts: list[str]) -> None:
    """`index remove TEXT_INDEX ID|TEXT ...`: numbers are ids, anything else an exact text."""
    from transferkit.text import TextIndex

    index = TextIndex.load(index_path)
    by_text = {index.index.item(int(i)): int(i) for i in index.index.ids}
    ids, missing = [], []
    for entry in ids_or_texts:
        if entry.lstrip("-").isdigit() and int(entry) in index.index:
            ids.append(int(entry))
        elif entry in by_text:
            ids.append(by_text[entry])
        else:
            missing.append(entry)
    if missing:
        raise NotInIndexError(f"{index_path}: not in the index (ids or exact texts): "
                       f"{[m[:60] for m in missing[:10]]}")
    removed = index.remove(ids)
    index.save()
    console.print(f"removed {removed}; index now holds {len(index)} "
                  f"({index.index.num_tombstones} tombstones)", highlight=False, markup=False)


def run_search_text(index_path: Path, queries: list[str], k: int = 5,
                    as_json: bool = False, ef_search: int | None = None) -> None:
    """`search INDEX --text "query"`: refuses image indexes with a clear error."""
    from transferkit.text import TextIndex

    index = TextIndex.load(index_path)
    if ef_search is not None:
        index.index.ef_search = ef_search
    results = index.search_texts(queries, k)
    if as_json:
        print(json.dumps({"index": str(index_path), "model": index.spec.get("name"),
                          "results": [{"query": q, "hits": [h.to_dict() for h in hits]}
                                      for q, hits in zip(queries, results)]}, indent=2))
        return
    for query, hits in zip(queries, results):
        console.print(f"[bold]{query}[/bold]", highlight=False)
        for rank, hit in enumerate(hits, 1):
            text = hit.text if len(hit.text) <= 160 else hit.text[:157] + "..."
            console.print(f"  {rank}. {hit.score:.3f}  {text}", highlight=False, markup=False)


def run_train_text(data: Path, output: Path, encoder: str = "minilm", head: str = "logreg",
                   text_column: str = "text", label_column: str = "label",
                   test_size: float = 0.2, seed: int = 0, head_params: dict | None = None,
                   max_features: int | None = None) -> dict:
    """`train DATA.csv --text -o DIR`: encoder + shared head; prints held-out metrics."""
    from transferkit.text import train_text_classifier

    model = train_text_classifier(data, encoder, head, head_params=head_params,
                                  encoder_params=_encoder_params(encoder, max_features),
                                  test_size=test_size, seed=seed, text_column=text_column,
                                  label_column=label_column, output=output)
    m = model.metrics
    if "accuracy" in m:
        console.print(f"{encoder} + {head}: held-out accuracy {m['accuracy']:.3f} "
                      f"(macro-F1 {m['macro_f1']:.3f}, chance {m['chance']:.3f}) on "
                      f"{m['n_test']} texts, {len(model.classes)} classes", highlight=False)
    console.print(f"saved text model to {output}", highlight=False)
    return m


def run_predict_text(model_dir: Path, texts: list[str] | None = None,
                     files: list[Path] | None = None, top_k: int = 3, as_json: bool = False,
                     text_column: str = "text") -> None:
    """`predict MODEL --text "..."` (or .txt/.csv files): top-k labels per text."""
    from transferkit.text import load_text_model, read_texts

    items: list[tuple[str, str]] = [(t, t) for t in (texts or [])]
    for file in files or []:
        data = read_texts(file, text_column=text_column, label_column=None)
        items += list(zip(data.ids, data.texts))
    if not items:
        raise ValueError("nothing to predict: pass --text 'some text' or a .txt/.csv file")
    model = load_text_model(model_dir)
    tops = model.predict_top([t for _, t in items], top_k)
    results = [{"id": i, "text": t, "top_k": [{"label": c, "probability": round(p, 4)}
                                              for c, p in top]}
               for (i, t), top in zip(items, tops)]
    if as_json:
        print(json.dumps({"model": str(model_dir), "results": results}, indent=2))
        return
    for res in results:
        label = res["id"] if res["id"] != res["text"] else res["text"][:80]
        best = ", ".join(f"{x['label']} {x['probability']:.0%}" for x in res["top_k"])
        console.print(f"{label}: {best}", highlight=False, markup=False)


def refuse_image_index(index_path: Path) -> None:
    """For image search branches: a text index gets a clear error, not a crash."""
    from transferkit.text import is_text_index

    if Path(index_path).is_file() and is_text_index(index_path):
        err_console.print(f"[red]error:[/red] {index_path}: is a text index; query it with "
                          f"--text \"...\", not an image", highlight=False)
        raise typer.Exit(2)
