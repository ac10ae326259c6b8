"""TF-IDF vs GloVe word-vector means vs the sentence model (all-MiniLM-L6-v2) on fortunes.

Run:  .venv/bin/python benchmarks/bench_text.py               (about 5 minutes on 2 cores)
      .venv/bin/python benchmarks/bench_text.py --quick       (6 categories x 40, ~1 minute)

Data: quotes from Debian's ``fortunes`` package (``/usr/share/games/fortunes``), label = the
category file (default: the 18 topical categories in ``transferkit.text.FORTUNE_CATEGORIES``),
``--per-category`` quotes each (seeded sample), one stratified train/test split shared by
every row. TF-IDF (and TF-IDF+SVD, i.e. LSA) learn their vocabulary from the training split
only, and so does GloVe's idf weighting (``glove-idf``); the plain GloVe mean and MiniLM
are used as shipped (no fitting). Every encoder feeds the same shared heads
(``transferkit.heads.make_head``) with default parameters, so rows differ only by encoder.
Chance and majority-class accuracy are printed as the floor. Then a few search examples:
the same paraphrased queries against a TF-IDF, a GloVe-idf and a MiniLM index of all quotes.

Timings (encode, fit) are wall-clock on a shared machine: other jobs make them noisy; the
accuracies do not depend on load (fixed seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TRANSFERKIT_QUIET", "1")

QUICK_CATEGORIES = ["startrek", "computers", "law", "food", "sports", "love"]
QUERIES = [
    "Beam me up, there's no intelligent life on this planet.",
    "My computer crashed and I lost all my work.",
    "Lawyers will argue about anything if you pay them.",
    "Chocolate is the answer, whatever the question.",
    "The team lost again, but the fans keep cheering.",
]


def run(args: argparse.Namespace) -> dict:
    from transferkit.heads import make_head
    from transferkit.search import VectorIndex
    from transferkit.text import (
        FORTUNE_CATEGORIES,
        TextIndex,
        create_text_encoder,
        load_fortunes,
        split_indices,
    )
    from transferkit.text.train import evaluate

    categories = args.categories or (QUICK_CATEGORIES if args.quick else FORTUNE_CATEGORIES)
    per_cat = args.per_category or (40 if args.quick else 100)
    data = load_fortunes(categories, max_per_category=per_cat, seed=args.seed)
    classes = data.classes
    y = np.asarray([classes.index(label) for label in data.labels])
    train, test = split_indices(data.labels, args.test_size, seed=args.seed)
    texts = np.asarray(data.texts, dtype=object)
    print(f"fortunes: {len(data)} quotes, {len(classes)} categories x {per_cat}, "
          f"train {len(train)} / test {len(test)} (stratified, seed {args.seed})")

    encoders = {"tfidf": ("tfidf", {}), f"tfidf+svd{args.svd}": ("tfidf", {"svd_components":
                                                                           args.svd}),
                "glove": ("glove", {}), "glove-idf": ("glove-idf", {}),
                "minilm": ("minilm", {})}
    features: dict[str, tuple[np.ndarray, np.ndarray, dict]] = {}
    fitted = {}
    for label, (name, params) in encoders.items():
        started = time.perf_counter()
        enc = create_text_encoder(name, **params)
        if enc.requires_fit:
            enc.fit(list(texts[train]))
        else:
            enc.fit()  # loads the model; excluded from the encode speed below
        loaded = time.perf_counter()
        x_train, x_test = enc.transform(list(texts[train])), enc.transform(list(texts[test]))
        done = time.perf_counter()
        fitted[label] = enc
        features[label] = (x_train, x_test, {"dim": x_train.shape[1],
                                             "setup_s": loaded - started,
                                             "encode_s": done - loaded,
                                             "texts_per_s": len(data) / (done - loaded)})
        print(f"  encoded with {label:<12} dim {x_train.shape[1]:>5}  "
              f"{len(data) / (done - loaded):7.1f} texts/s", flush=True)

    rows = []
    floor = evaluate(y[test], np.zeros(len(test), int), len(classes))
    for head in args.heads:
        for label, (x_train, x_test, info) in features.items():
            started = time.perf_counter()
            model = make_head(head).fit(x_train, y[train])
            fit_s = time.perf_counter() - started
            pred = model.predict(x_test)
            metrics = evaluate(y[test], pred, len(classes))
            rows.append({"head": head, "encoder": label, **metrics, "fit_s": fit_s, **info})
            print(f"  {head:<18} {label:<12} accuracy {metrics['accuracy']:.3f}", flush=True)

    print()
    print(f"Held-out accuracy on {len(test)} quotes, {len(classes)} classes "
          f"(chance {floor['chance']:.3f}, majority {floor['majority']:.3f})")
    names = list(features)
    header = f"{'head':<18}" + "".join(f"{n:>22}" for n in names)
    print(header)
    print("-" * len(header))
    for head in args.heads:
        cells = []
        for n in names:
            r = next(r for r in rows if r["head"] == head and r["encoder"] == n)
            cells.append(f"{r['accuracy']:.3f} (F1 {r['macro_f1']:.2f}) {r['fit_s']:4.0f}s")
        print(f"{head:<18}" + "".join(f"{c:>22}" for c in cells))
    print("(cells: accuracy, macro-F1, head fit seconds)")
    print("encode speed (texts/s): " + ", ".join(
        f"{n} {features[n][2]['texts_per_s']:.0f}" for n in names))

    print("\nSearch examples (top 3, cosine similarity; index = all quotes above; TF-IDF "
          "vocabulary from the training split)")
    examples = []
    indexes = {}
    for name in ("tfidf", "glove-idf", "minilm"):  # reuse the vectors computed above (same encoder)
        x_train, x_test, _ = features[name]
        enc = fitted[name]
        index = TextIndex(VectorIndex(x_train.shape[1], method="exact", spec=enc.spec()), enc)
        keep = [i for i, v in zip(np.r_[train, test], np.vstack([x_train, x_test])) if v.any()]
        vectors = np.vstack([x_train, x_test])
        index.index.add(vectors[np.any(vectors, axis=1)], [data.texts[i] for i in keep])
        indexes[name] = index
    for query in QUERIES:
        print(f"\nquery: {query}")
        entry = {"query": query}
        for name, index in indexes.items():
            try:
                hits = index.search_texts(query, k=3)[0]
            except ValueError as exc:  # TF-IDF: no word of the query in the vocabulary
                print(f"  [{name}] {exc}")
                entry[name] = []
                continue
            entry[name] = [{"score": h.score, "text": h.text,
                            "category": data.labels[data.texts.index(h.text)]} for h in hits]
            for h in entry[name]:
                text = h["text"] if len(h["text"]) < 110 else h["text"][:107] + "..."
                print(f"  [{name:<6}] {h['score']:.3f} ({h['category']}) {text}")
        examples.append(entry)
    return {"categories": list(categories), "per_category": per_cat, "n_train": len(train),
            "n_test": len(test), "seed": args.seed, "floor": floor, "rows": rows,
            "search_examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 categories x 40 quotes")
    parser.add_argument("--categories", nargs="*", default=None)
    parser.add_argument("--per-category", type=int, default=None)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--svd", type=int, default=256, help="LSA dimensions (TF-IDF+SVD row)")
    parser.add_argument("--heads", nargs="*",
                        default=["logreg", "mlp", "random_forest", "gradient_boosting"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/bench-text"))
    args = parser.parse_args()
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    from transferkit.utils import atomic_write_text

    atomic_write_text(args.out / "bench_text.json", json.dumps(result, indent=2))
    print(f"\nrows: {args.out / 'bench_text.json'}")


if __name__ == "__main__":
    main()
