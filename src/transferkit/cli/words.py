"""`transferkit words nearest|analogy|similarity`: GloVe word vectors from the command line."""

from __future__ import annotations

import json

import typer

from transferkit.cli._common import console, friendly_errors

words_app = typer.Typer(no_args_is_help=True, help="GloVe 6B word vectors (50-d, 400k words): "
                                                   "nearest words, analogies, similarity.")


def register(app: typer.Typer) -> None:
    app.add_typer(words_app, name="words")


def _print_scores(title: str, scores, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"query": title, "words": [{"word": s.word, "score": round(s.score, 4)}
                                                     for s in scores]}, indent=2))
        return
    console.print(f"[bold]{title}[/bold]", highlight=False)
    for rank, item in enumerate(scores, 1):
        console.print(f"  {rank}. {item.score:.3f}  {item.word}", highlight=False, markup=False)


@words_app.command("nearest")
@friendly_errors
def nearest(word: str = typer.Argument(..., help="A word (case-insensitive)."),
            k: int = typer.Option(10, "-k", help="How many neighbours."),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """The words whose vectors are closest (cosine) to WORD."""
    from transferkit.text import WordVectors

    _print_scores(word, WordVectors.default().nearest(word, k), as_json)


@words_app.command("analogy")
@friendly_errors
def analogy(a: str = typer.Argument(..., help="king"), b: str = typer.Argument(..., help="man"),
            c: str = typer.Argument(..., help="woman"),
            k: int = typer.Option(5, "-k", help="How many answers."),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """A - B + C: `words analogy king man woman` answers queen."""
    from transferkit.text import WordVectors

    _print_scores(f"{a} - {b} + {c}", WordVectors.default().analogy(a, b, c, k), as_json)


@words_app.command("similarity")
@friendly_errors
def similarity(first: str = typer.Argument(...), second: str = typer.Argument(...),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Cosine similarity of two words' vectors (1 = same direction)."""
    from transferkit.text import WordVectors

    score = WordVectors.default().similarity(first, second)
    if as_json:
        print(json.dumps({"first": first, "second": second, "similarity": round(score, 4)}))
    else:
        console.print(f"{first} ~ {second}: {score:.3f}", highlight=False, markup=False)
