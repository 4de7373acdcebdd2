"""``lookalike`` command line: import, check, train, evaluate, predict, demo, ...

Errors from the engine are printed as one line (code + what to do) with exit status 2,
never as a traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lookalike.admin_cli import app as admin_app
from lookalike.config import Settings, get_settings
from lookalike.errors import CannotJudge, DatasetError, InvalidInput, LookalikeError
from lookalike.kinds import Trigger
from lookalike.names.cli import app as names_app

if TYPE_CHECKING:
    from lookalike.data.personal import GatherReport

app = typer.Typer(
    help="Which class (person, character, celebrity) does a face look like?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: flags without a "<bool>" type column, and docstrings wrapped as paragraphs
    # (rich mode keeps their line breaks and cut the first sentence in two).
    rich_markup_mode=None,
    add_completion=False,
)
classes_app = typer.Typer(
    help="List and rename classes.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(classes_app, name="classes")
app.add_typer(admin_app, name="admin")
app.add_typer(names_app, name="names")

console = Console(soft_wrap=True)  # lines are not wrapped at 80 columns when piped
err = Console(stderr=True, soft_wrap=True)


def settings_from(home: Path | None) -> Settings:
    s = get_settings()
    return s.model_copy(update={"home": home}) if home else s


HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory (default: $LOOKALIKE_HOME).")
]


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar fed by (done, total) callbacks; shown from the first callback on,
    so a command refused before any work prints its error alone."""
    bar: Progress | None = None
    task = None

    def update(done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=False,
            )
            bar.start()
            task = bar.add_task(label, total=None)
        assert task is not None
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


@app.command("import")
def import_cmd(
    source: Annotated[Path, typer.Argument(help="Folder of class folders, a .zip, or a CSV.")],
    backbone: Annotated[str | None, typer.Option(help="Backbone: face, image, test.")] = None,
    home: HomeOpt = None,
) -> None:
    """Import labelled images.

    DIR/<class>/<image>, a .zip of that, or a path,label CSV."""
    from lookalike.data.importers import import_images

    settings = settings_from(home)
    with progress_bar(f"import {source.name}") as update:
        report = import_images(source, settings, backbone_name=backbone, progress=update)
    if report.problems:
        table = Table(title="Problems", show_lines=False)
        for col in ("file", "severity", "code", "message"):
            table.add_column(col, overflow="fold")
        for p in report.problems:
            style = "red" if p.severity == "error" else "yellow"
            table.add_row(escape(p.source), f"[{style}]{p.severity}[/]", p.code, escape(p.message))
        console.print(table)
    console.print(
        f"Imported [bold]{report.added}[/] new image(s) in {len(report.classes)} class(es);"
        f" {report.already_present} already present; {report.rejected} rejected;"
        f" {sum(p.severity == 'warning' for p in report.problems)} warning(s)."
    )
    if report.added:  # the dataset-wide checks, on the embeddings import just cached
        from lookalike.data.review import check_and_report

        found = check_and_report(settings, backbone)
        console.print(escape(f"Checks: {found.summary()} (details: lookalike check)."))
    if report.added == 0 and report.already_present == 0:
        what = "no files" if not report.seen and not report.problems else "every file was refused"
        raise DatasetError(
            f"Nothing was imported from {source} ({what}). Expected a folder with one"
            " sub-folder per class (photos/Alice/1.jpg, photos/Bob/2.jpg), a .zip of that, or"
            " a CSV of path,label rows.",
            code="import.nothing_imported",
            details={"rejected": report.rejected},
        )


@app.command()
def check(
    home: HomeOpt = None,
    review: Annotated[
        bool, typer.Option(help="Also look for photos that hurt a model (embeds what is new).")
    ] = True,
    shown: Annotated[int, typer.Option(help="Worst photos listed per kind of problem.")] = 3,
) -> None:
    """Report the dataset.

    Images per class, classes too small to train, warnings; then near-duplicates, outliers,
    photos closer to another class, underrepresented classes (report JSON in reports/)."""
    from lookalike.data.store import DatasetStore

    settings = settings_from(home)
    catalog = DatasetStore(settings).load()
    counts = catalog.counts()
    if not counts:
        console.print("The dataset is empty: run `lookalike import DIR` first.")
        return
    table = Table(title=f"Dataset ({len(catalog.images)} images, revision {catalog.revision})")
    for col in ("class", "images", "warnings", "status"):
        table.add_column(col)
    for label, recs in catalog.by_label().items():
        warns = sum(bool(r.warnings) for r in recs)
        ok = len(recs) >= settings.min_images_per_class
        status = "ok" if ok else f"[red]too few (need {settings.min_images_per_class})[/]"
        table.add_row(escape(label), str(len(recs)), str(warns), status)
    console.print(table)
    if review:
        _print_review(settings, shown)


def _print_review(settings: Settings, shown: int) -> None:
    from lookalike.data.review import check_and_report

    found = check_and_report(settings)
    table = Table(title=f"Problems ({found.images} photos, {found.classes} classes)")
    for col in ("kind", "flagged", f"worst (up to {shown})"):
        table.add_column(col)
    for kind, count in found.counts().items():
        if kind in found.skipped:
            continue
        worst = [f for f in found.flags if f.kind == kind][:shown]
        lines = "\n".join(
            f"{f.source or f.label}: {f.reason}"
            + (f" -> {f.suggested_label}?" if f.suggested_label else "")
            for f in worst
        )
        table.add_row(kind, str(count), escape(lines) or "-")
    for kind, why in found.skipped.items():
        table.add_row(kind, "[yellow]skipped[/]", escape(why))
    console.print(table)
    console.print(escape(f"wrote {settings.data_dir.dataset_check}"))


@classes_app.command("list")
def classes_list(home: HomeOpt = None) -> None:
    """List classes and their image counts.

    One ``name<TAB>count`` line each."""
    from lookalike.data.store import DatasetStore

    for label, n in sorted(DatasetStore(settings_from(home)).load().counts().items()):
        print(f"{label}\t{n}")  # plain: rich would expand the tab and wrap long names


@classes_app.command("rename")
def classes_rename(old: str, new: str, home: HomeOpt = None) -> None:
    """Rename a class (its display name).

    Retrain for models to use the new name."""
    from lookalike.data.store import DatasetStore

    n = DatasetStore(settings_from(home)).rename_class(old, new)
    console.print(escape(f"Renamed {old!r} to {new!r} ({n} images). Retrain to use the new name."))


@app.command()
def train(
    head: Annotated[
        str,
        typer.Option(
            help="logistic, gallery, auto (best on validation; fine-tuning among them where"
            " the auto_finetune settings allow), or finetune (trains the network itself;"
            " needs the torch extra)."
        ),
    ] = "auto",
    backbone: Annotated[str | None, typer.Option(help="Backbone: face, image, test.")] = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train a model on the imported dataset. The first one becomes the champion; later ones
    replace it only when they win on the same frozen test set (see `lookalike retrain`)."""
    from lookalike.retrain import retrain

    settings = settings_from(home)
    with progress_bar("embed") as update:
        result = retrain(
            settings,
            trigger=Trigger.MANUAL,
            actor="cli train",
            head=head,
            backbone_name=backbone,
            strict=False,
            progress=lambda _s, d, t: update(d, t),
        )
    report = result.report
    if as_json:
        out = dict(report.__dict__, promoted=result.promoted, champion=result.champion)
        out["decision"] = result.decision.reason
        print(json.dumps(out, indent=1, default=str))
        return
    m = report.metrics
    for label, n in sorted(report.too_few.items()):
        console.print(
            f"[yellow]left out[/] {escape(repr(label))}: {n} image(s),"
            f" need {settings.min_images_per_class}"
        )
    for source, why in report.failures.items():
        console.print(f"[yellow]skipped[/] {escape(source)}: {escape(why)}")
    console.print(
        f"Model [bold]{report.version}[/] ({report.backbone}, head {report.head}; validation"
        f" {report.val_scores}; fit {report.fit_seconds} s; embedded {report.embedded},"
        f" cached {report.cached})"
    )
    console.print(
        f"Test set: accuracy {m.get('accuracy')}, macro-F1 {m.get('macro_f1')} on {m.get('n')}"
        f" photos. Open-set threshold {report.threshold}."
    )
    _print_decision(result.promoted, result.champion, result.decision.reason)


def _print_decision(promoted: bool, champion: str, reason: str) -> None:
    verdict = "[green]promoted[/]" if promoted else "[yellow]not promoted[/]"
    console.print(f"{verdict}: {escape(reason)} Champion: [bold]{escape(champion)}[/]")


@app.command()
def retrain(
    home: HomeOpt = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="Hand it to the job worker instead of running here.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Retrain now, promoting the new model only if it wins.

    A challenger from the current dataset (only new images are embedded),
    compared with the champion on the same frozen test set, promoted only when it wins."""
    from lookalike.retrain import retrain as run_retrain

    settings = settings_from(home)
    if queue:
        from lookalike.jobs import Jobs

        job = Jobs(settings).enqueue_retrain(Trigger.MANUAL, "cli retrain")
        what = "Joined the retrain already queued or running" if job.joined else "Queued retrain"
        console.print(f"{what}: job {job.id}; `lookalike models list` shows the outcome.")
        return
    with progress_bar("embed") as update:
        result = run_retrain(
            settings,
            trigger=Trigger.MANUAL,
            actor="cli retrain",
            progress=lambda _s, d, t: update(d, t),
        )
    if as_json:
        print(
            json.dumps(
                {
                    "version": result.version,
                    "promoted": result.promoted,
                    "champion": result.champion,
                    "previous": result.previous,
                    "reason": result.decision.reason,
                    "figures": result.decision.figures,
                    "embedded": result.report.embedded,
                    "cached": result.report.cached,
                    "visitor_photos": _gathered(result.visitors),
                    "contributor_crops": _gathered(result.contributors),
                    "seconds": result.seconds,
                },
                indent=1,
            )
        )
        return
    gathered_both = (
        ("Visitors' photos", result.visitors),
        ("Contributors' crops", result.contributors),
    )
    for what, gathered in gathered_both:
        if gathered.added or gathered.forgotten:
            console.print(f"{what}: {gathered.added} added, {gathered.forgotten} removed.")
    console.print(
        f"Challenger [bold]{result.version}[/] in {result.seconds:.1f} s (embedded"
        f" {result.report.embedded}, cached {result.report.cached})."
    )
    _print_decision(result.promoted, result.champion, result.decision.reason)


def _gathered(gathered: GatherReport) -> dict[str, int]:
    return {"added": gathered.added, "removed": gathered.forgotten}


@app.command()
def worker(
    home: HomeOpt = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Contributions processed at the same time.")
    ] = 1,
    training: Annotated[
        bool,
        typer.Option(
            help="Also take the training jobs (retrains, the schedule, the new-images check,"
            " the retention sweep): only on the host whose data dir holds the dataset."
        ),
    ] = True,
) -> None:
    """Run the job worker.

    Queued contributions, and unless --no-training the training jobs: scheduled retrains,
    the new-images check, queued retrains, the daily retention sweep."""
    from lookalike.jobs import Jobs

    settings = settings_from(home)
    jobs = Jobs(settings)
    taken = jobs.queues(training)
    console.print(escape(_worker_banner(settings, [queue.name for queue in taken])))
    jobs.consumer(workers, training=training).run()


def _worker_banner(settings: Settings, queues: list[str]) -> str:
    """Which queues this worker takes (the general one first), and when it retrains."""
    general = f"contributions (queue '{queues[0]}')"
    if len(queues) == 1:
        return (
            f"Job worker: {general} only; training jobs wait for a worker on the dataset's"
            " host. Ctrl+C stops."
        )
    return (
        f"Job worker: {general} and training (queue '{queues[1]}'): retrain on"
        f" '{settings.retrain_cron}', check for new images every"
        f" {settings.retrain_check_minutes} min. Ctrl+C stops."
    )


@app.command("backup")
def backup_command(
    path: Annotated[Path, typer.Argument(help="A new folder for the backup.")],
    home: HomeOpt = None,
) -> None:
    """Back up the database, the data dir and the objects.

    Consistent while the service runs. Restore with `lookalike restore PATH` into an empty
    data dir and database."""
    from lookalike.backup import backup

    manifest = backup(settings_from(home), path)
    rows = sum(manifest.rows.values())
    console.print(
        escape(
            f"Backed up {rows} rows of {len(manifest.rows)} tables and {len(manifest.files)}"
            f" files into {path}"
            + (
                f" ({manifest.objects_missing} objects deleted meanwhile)."
                if manifest.objects_missing
                else "."
            )
        )
    )


@app.command("restore")
def restore_command(
    path: Annotated[Path, typer.Argument(help="A folder written by `lookalike backup`.")],
    home: HomeOpt = None,
) -> None:
    """Restore a backup into an empty data dir and database.

    Every file's SHA-256 is checked first; nothing is restored from a damaged backup."""
    from lookalike.backup import restore

    settings = settings_from(home)
    manifest = restore(settings, path)
    console.print(
        escape(
            f"Restored {sum(manifest.rows.values())} rows and {len(manifest.files)} files"
            f" (backup of {manifest.created_at}) into {settings.home}."
        )
    )


models_app = typer.Typer(
    help="The model registry: list, show, promote, roll back.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List model versions.

    Newest first, with test figures and the gate's decision."""
    from lookalike.registry import Registry
    from lookalike.services.models import alias_of, version_view

    with Registry.open(settings_from(home)) as registry:
        rows, aliases = registry.versions(), registry.aliases()
    tags = {v: a for a, v in aliases.items()}
    if as_json:
        data = [version_view(r, alias_of(r.version, aliases), show_authors=True) for r in rows]
        _print_json({"data": data, "count": len(data), "aliases": aliases})
        return
    # Compact, one line per version (fits 80 columns); `models show V` has everything.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    widths = {"version": 7, "alias": 10, "created (UTC)": 16, "classes": 7, "acc": 5, "F1": 5,
              "decision": 8}  # fmt: skip
    for col, width in widths.items():
        table.add_column(col, no_wrap=True, min_width=width)
    table.add_column("by", overflow="ellipsis", no_wrap=True)
    for r in rows:
        table.add_row(
            r.version, tags.get(r.version, ""), r.created_at.strftime("%Y-%m-%d %H:%M"),
            str(len(r.labels)), _figure(r.metrics.get("accuracy")),
            _figure(r.metrics.get("macro_f1")), r.decision or "", escape(r.created_by),
        )  # fmt: skip
    console.print(table)


def _figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=1, default=lambda v: v.isoformat()))  # datetimes


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="Model version, e.g. m0003.")],
    home: HomeOpt = None,
) -> None:
    """Show one version and its history.

    Registration, gate decision with figures, promotions."""
    from lookalike.registry import Registry
    from lookalike.services.models import alias_of, event_view, version_view

    with Registry.open(settings_from(home)) as registry:
        row = registry.get(version)
        aliases = registry.aliases(row.kind)
        events = registry.events(row.kind, version)
    out = version_view(row, alias_of(version, aliases), show_authors=True)
    out["events"] = [event_view(e, show_authors=True) for e in reversed(events)]
    _print_json(out)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="Model version to serve.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the history).")] = "promoted by hand",
    home: HomeOpt = None,
) -> None:
    """Make a version the champion.

    Serving processes switch without a restart."""
    from lookalike.registry import Registry
    from lookalike.services import models

    with Registry.open(settings_from(home)) as registry:
        move = models.promote(registry, version, reason=reason, actor="cli")
    console.print(f"Champion: [bold]{escape(version)}[/] (was {escape(str(move.previous))}).")


@models_app.command("rollback")
def models_rollback(
    to: Annotated[
        str | None, typer.Option(help="Version to go back to (default: the previous champion).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the history).")] = "rolled back by hand",
    home: HomeOpt = None,
) -> None:
    """Go back to the previous champion.

    Serving processes switch without a restart."""
    from lookalike.registry import Registry
    from lookalike.services import models

    with Registry.open(settings_from(home)) as registry:
        move = models.rollback(registry, reason=reason, actor="cli", to=to)
    was = escape(str(move.previous))
    console.print(f"Champion: [bold]{escape(move.champion)}[/] (rolled back from {was}).")


@app.command()
def evaluate(
    version: Annotated[str | None, typer.Option(help="Model version (default: champion).")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="Another version, shown side by side on the same test photos."),
    ] = None,
    against_champion: Annotated[
        bool,
        typer.Option(
            "--against-champion",
            help="Compare with the champion (the version then defaults to the challenger).",
        ),
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Evaluate a model on its frozen test set.

    Writes metrics.json + confusion.png; prints per-class precision and recall and the top
    losses with their photos. With --compare or --against-champion, two versions side by
    side: accuracy, macro-F1, per-class recall and the photos one gets right and the other
    wrong."""
    from lookalike.data.store import DatasetStore
    from lookalike.registry import Registry
    from lookalike.training.evaluate import evaluate_version as run_evaluate

    if compare is not None and against_champion:
        raise InvalidInput(
            "--compare and --against-champion both name the version to compare with; give one.",
            code="input.invalid",
        )
    settings = settings_from(home)
    if version is None or against_champion:
        with Registry.open(settings) as registry:
            if against_champion:
                compare = registry.champion()
                version = version or registry.challenger()
                if compare is None or version is None:
                    raise InvalidInput(
                        "--against-champion needs a champion and another version: "
                        + ("there is no champion yet." if compare is None else "there is no"
                           " challenger; name one with --version."),
                        code="input.invalid",
                    )  # fmt: skip
            version = version or registry.champion()
    if compare is not None and compare == version:
        raise InvalidInput(
            f"{compare} is both the evaluated version and the one to compare with; choose"
            " another (--version, --compare).",
            code="input.invalid",
        )
    metrics, paths = run_evaluate(settings, version, out)
    console.print(
        f"Model {metrics['model']} on test set v{metrics['test_version']}: accuracy"
        f" {metrics['accuracy']}, macro-F1 {metrics['macro_f1']}, n={metrics['n']}"
    )
    store = DatasetStore(settings)
    images = store.load().images

    def photo_path(sha256: str) -> str:
        record = images.get(sha256)
        return str(store.path_of(record)) if record else f"{sha256} (deleted since)"

    if metrics.get("per_class"):
        table = Table(title="Per class", box=box.SIMPLE_HEAD)
        for column in ("class", "precision", "recall", "F1", "test photos"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for label, row in metrics["per_class"].items():
            figures = (row["precision"], row["recall"], row["f1"])
            table.add_row(escape(label), *(f"{v:.2f}" for v in figures), str(row["support"]))
        console.print(table)
    for loss in metrics.get("top_losses", [])[:5]:
        console.print(
            escape(
                f"  wrong: {loss['source']} is {loss['true']!r}, predicted {loss['predicted']!r}"
                f" ({loss['probability']:.2f}); photo {photo_path(loss['sha256'])}"
            )
        )
    for p in paths:
        console.print(escape(f"wrote {p}"))
    if compare is not None:
        _print_side_by_side(settings, str(metrics["model"]), compare, photo_path)


def _print_side_by_side(
    settings: Settings, version: str, other: str, photo_path: Callable[[str], str]
) -> None:
    """``lookalike evaluate --compare``: both versions on the same test photos."""
    from lookalike.training.evaluation_views import side_by_side

    a, b, diff = side_by_side(settings, version, other)
    table = Table(
        title=f"{version} beside {other} on test set v{diff['test_version']}"
        f" ({diff['shared']} photos both answered)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("")
    table.add_column(version, justify="right")
    table.add_column(other, justify="right")

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    table.add_row("accuracy", shown(a["accuracy"]), shown(b["accuracy"]))
    table.add_row("macro-F1", shown(a["macro_f1"]), shown(b["macro_f1"]), end_section=True)
    for row in diff["per_class"]:
        recalls = (shown(row["recall"]), shown(row["compare_recall"]))
        table.add_row(escape(f"recall {row['label']}"), *recalls)
    console.print(table)
    for key, right, wrong in (
        ("only_version_right", version, other),
        ("only_compare_right", other, version),
    ):
        count = diff[f"{key}_count"]
        console.print(f"Right with {right}, wrong with {wrong}: {count} photo(s)")
        for photo in diff[key][:10]:
            answer = photo["compare_predicted"] if right == version else photo["predicted"]
            console.print(
                escape(
                    f"  {photo['source']} is {photo['true']!r}, {wrong} says {answer!r};"
                    f" photo {photo_path(photo['sha256'])}"
                )
            )
        if count > 10:
            console.print(f"  ... and {count - 10} more")


@app.command()
def predict(
    photos: Annotated[list[Path], typer.Argument(help="Photo file(s).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    face: Annotated[
        int | None,
        typer.Option(help="Which face: its number (1 = largest), as listed in the answer."),
    ] = None,
    together: Annotated[
        bool,
        typer.Option(
            "--together", help="The photos are one visitor's: answer them together (a visit)."
        ),
    ] = False,
    top: Annotated[int, typer.Option(help="Classes to show.")] = 5,
    version: Annotated[str | None, typer.Option(help="Model version (default: champion).")] = None,
    home: HomeOpt = None,
) -> None:
    """Who does each photo look like?

    This is X, you look like X, or cannot judge."""
    from lookalike.inference import Predictor, Visit
    from lookalike.vision.images import read_image

    if face is not None and face < 1:
        raise InvalidInput(
            f"--face is a face's number, 1 or more (1 = largest); got {face}.",
            code="input.invalid",
        )
    predictor = Predictor(settings_from(home), version)
    results: list[dict[str, Any]] = []
    failed = False
    visit: Visit | None = None
    for path in photos:
        try:
            image = read_image(path, predictor.settings)
            prediction = predictor.predict(
                image, face_index=None if face is None else face - 1, visit=visit
            )
        except LookalikeError as exc:
            if exc.code.startswith("model."):
                raise
            failed = True
            results.append({"photo": str(path), **exc.to_dict()})
            if not as_json:
                what = "cannot judge" if isinstance(exc, CannotJudge) else "refused"
                err.print(
                    f"[red]{escape(str(path))}[/]: {what}: {escape(f'{exc.message} [{exc.code}]')}"
                )
            continue
        if together:
            visit = prediction.visit()
        result = prediction.to_dict()
        results.append({"photo": str(path), **result})
        if not as_json:
            _print_prediction(str(path), result, top)
    if as_json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=1))
    if failed:
        raise typer.Exit(2)


def _print_prediction(name: str, r: dict[str, Any], top: int) -> None:
    answer = r["answer"]
    looks = f" (from {answer['looks']} photos)" if answer["looks"] > 1 else ""
    console.print(f"{escape(name)}{looks}: [bold]{escape(answer['message'])}[/]")
    if r["faces_found"] > 1:
        faces = ", ".join(
            f"{f['number']}{' (used)' if f['number'] - 1 == r['face_index'] else ''}"
            for f in r["faces"]
        )
        console.print(f"   {r['faces_found']} faces, largest first: {faces}; pick with --face N")
    for x in answer["lookalikes"]:
        console.print(
            f"   {x['strength']:5.0%}  {escape(x['label'])}  ({x['strength_words']} resemblance)"
        )
    probabilities = r["probabilities"][:top]
    shown = ", ".join(f"{escape(p['label'])} {p['probability']:.1%}" for p in probabilities)
    console.print(f"   probabilities: {shown}")


@app.command()
def backbones() -> None:
    """List the embedding backbones."""
    from lookalike.vision.backbones import list_backbones

    for name, desc in list_backbones().items():
        console.print(f"{name}\t{desc}")


@app.command("settings")
def settings_cmd() -> None:
    """List every setting, its value and what it does.

    Each is read from the environment as LOOKALIKE_<NAME>."""
    s = get_settings()
    table = Table()
    for col in ("env", "value", "description"):
        table.add_column(col, overflow="fold")
    for name, field in Settings.model_fields.items():
        table.add_row(f"LOOKALIKE_{name.upper()}", str(getattr(s, name)), field.description or "")
    console.print(table)


HostOpt = Annotated[
    str | None, typer.Option("--host", help="Address to listen on (default: $LOOKALIKE_HOST).")
]
PortOpt = Annotated[
    int | None, typer.Option("--port", help="Port to listen on (default: $LOOKALIKE_PORT).")
]


def run_server(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int = 1
) -> None:
    """Serve the web service (see ``lookalike.server``)."""
    from lookalike.server import serve

    serve(settings, host, port, lambda line: console.print(escape(line)), workers)


@app.command()
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    home: HomeOpt = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Processes answering requests (default 1).")
    ] = 1,
) -> None:
    """Run the web service.

    The public page at / and the JSON API under /api. With --workers N, N processes share
    the port (each keeps its own model in memory)."""
    run_server(settings_from(home), host, port, workers)


@app.command()
def demo(
    dest: Annotated[Path, typer.Option(help="Where to build the demo photos.")] = Path(
        "lookalike-data/demo-source"
    ),
    home: HomeOpt = None,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the web page when done.")
    ] = True,
    host: HostOpt = None,
    port: PortOpt = None,
) -> None:
    """Build the ORL demo, train and serve it.

    40 people (10 of them strangers), import, train, answer for the held-out visitors, then
    serve the web page (unless --no-serve)."""
    from lookalike.demo import run_demo
    from lookalike.server import check_port

    settings = settings_from(home)
    if serve:
        check_port(port if port is not None else settings.port)  # before minutes of work
    run_demo(settings, dest, console)
    if serve:
        run_server(settings, host, port)


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:  # a bad LOOKALIKE_* variable or .env entry
        problems = "; ".join(
            f"LOOKALIKE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"[red]error[/] {escape(f'[settings.invalid] {problems}')}")
        sys.exit(2)
    except LookalikeError as exc:
        err.print(f"[red]error[/] {escape(f'[{exc.code}] {exc.message}')}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
