"""``lookalike names train | generate``: the name generator from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from lookalike.config import Settings, get_settings

app = typer.Typer(
    help="Invent new names with a character-level GRU.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory (default: $LOOKALIKE_HOME).")
]


def _settings(home: Path | None) -> Settings:
    s = get_settings()
    return s.model_copy(update={"home": home}) if home else s


@app.command("train")
def train_cmd(
    corpus: Annotated[
        str,
        typer.Option(
            help="pokemon (1025 Pokemon names), first-names (US census first names), or a"
            " FILE with one name per line."
        ),
    ] = "pokemon",
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs (default 60).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: $LOOKALIKE_SEED).")] = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train the name generator.

    Registers it, and promotes it when it should answer."""
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from lookalike.names.service import train_names
    from lookalike.names.train import HyperParameters

    settings = _settings(home)
    params = HyperParameters(seed=settings.seed if seed is None else seed)
    if epochs is not None:
        params = replace(params, max_epochs=epochs)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        console=err,
    )
    task = bar.add_task("epochs", total=params.max_epochs, loss="")

    def update(epoch: int, total: int, val_loss: float) -> None:
        bar.start()  # on the first epoch: a bad corpus fails before any bar is drawn
        bar.update(task, completed=epoch, loss=f"validation loss {val_loss:.4f}")

    try:
        report = train_names(settings, corpus, params=params, progress=update)
    finally:
        bar.stop()
    if as_json:
        print(json.dumps(report.to_dict(), indent=1))
        return
    m = report.metrics
    console.print(
        escape(
            f"Name generator {report.version} trained on {report.corpus!r}"
            f" ({report.corpus_names} names) in {m['train_seconds']} s, {m['epochs']} epochs"
            f" ({m['stopped']}, best epoch {m['best_epoch']})."
        )
    )
    console.print(
        f"Validation perplexity [bold]{m['val_perplexity']:.3f}[/] (character bigram baseline"
        f" {m['bigram_perplexity']:.3f}) on {m['val_names']} held-out names."
    )
    verdict = "[green]promoted[/]" if report.promoted else "[yellow]not promoted[/]"
    console.print(f"{verdict}: {escape(report.reason)}")


@app.command("generate")
def generate_cmd(
    count: Annotated[int, typer.Option(help="How many names.")] = 5,
    temperature: Annotated[float, typer.Option(help="0.2 (safe) to 2.0 (wild).")] = 1.0,
    prefix: Annotated[str | None, typer.Option(help="The names start with this.")] = None,
    seed: Annotated[int | None, typer.Option(help="Same seed, same names.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Longest name (characters).")] = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Invent new names, one per line.

    Never one of the training corpus."""
    from lookalike.names.service import NameGenerator

    generator = NameGenerator(_settings(home))
    try:
        result = generator.generate(
            count=count, temperature=temperature, prefix=prefix, seed=seed, max_length=max_length
        )
    finally:
        generator.close()
    if as_json:
        print(json.dumps(result.to_dict(), indent=1, ensure_ascii=False))
        return
    for name in result.names:
        print(name)
    if len(result.names) < count:
        err.print(
            escape(
                f"only {len(result.names)} of {count} new names found in {result.tries} tries"
                " (try another prefix or a higher temperature)"
            )
        )
    err.print(escape(f"model {result.model} ({result.corpus}), seed {result.request.seed}"))
