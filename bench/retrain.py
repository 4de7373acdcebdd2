"""Retraining after 10% new images vs retraining from nothing: ``python bench/retrain.py``

    python bench/retrain.py [--people 36] [--base-photos 9] [--new-known 24] [--new-people 4]
                            [--repeat 3] [--cores 2] [--keep DIR]

The data: ORL faces, real ``face`` backbone. The base is ``--people`` people x
``--base-photos`` photos (default 36 x 9 = 324), imported and trained into a champion. Then
about 10% new images arrive: the last photo of ``--new-known`` of those people and 3 photos
of each of ``--new-people`` people never seen (default 24 + 4 x 3 = 36). Their embeddings
are dropped from the cache after the import, so the retrain itself has to embed them (as
for images that arrived without being embedded).

Each row times ``lookalike.retrain.retrain()`` itself, in this process, on a copy of that
data dir (the lock, leftovers check, training, registration, the gate against the champion
on the same frozen test set, and the recorded decision):

- ``from nothing``: the embedding cache emptied: every image is embedded again;
- ``incremental``: the cache holds the base: only the new images are embedded;
- ``incremental, embedded at import``: the new images as ``lookalike import`` leaves them
  (embedded and cached on the way in): the retrain embeds nothing.

Both data dirs keep their ``backbones/`` folder (the folded ONNX files a data dir builds
once, at its first import): "from nothing" means no cached embeddings, not a fresh install.
Each row is the best of ``--repeat`` runs on fresh copies (the rows alternating; the
median and the CPU time beside it); the incremental and from-nothing rows are broken down
by step (functions of the engine wrapped with timers, in this process only).

Target (issue "model registry and safe continuous retraining"): a retrain after 10% new
images at least 10x faster than from nothing, thanks to the cache. A retrain that has to
embed the new images itself embeds a tenth of them: 10x is its ceiling, reached only if
nothing else took time; both verdicts are printed.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _support  # noqa: F401  (puts tests/ on sys.path for support.*)
from machine import load, pin_cores, print_machine
from support.training import class_folders

from lookalike import demo_data
from lookalike.config import Settings

TARGET_SPEEDUP = 10.0


# --- machine ---------------------------------------------------------------------------------


# --- where the time goes ---------------------------------------------------------------------


@dataclass
class Steps:
    """Seconds spent in wrapped functions, by the chain of steps they ran in."""

    seconds: dict[str, float] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        real = getattr(owner, attribute)
        if isinstance(owner, type) and isinstance(owner.__dict__.get(attribute), staticmethod):
            raise TypeError("static methods are not wrapped")

        @functools.wraps(real)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(name)
            path = " > ".join(self.stack)
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds[path] = self.seconds.get(path, 0.0) + time.perf_counter() - start
                self.stack.pop()

        setattr(owner, attribute, timed)

    def reset(self) -> None:
        self.seconds.clear()


def instrument() -> Steps:
    """Time the steps of ``retrain`` by wrapping the functions it calls (this process only)."""
    import lookalike.retrain as retrain_module
    import lookalike.training.compare as compare_module
    import lookalike.training.train as train_module
    from lookalike.data.embed import Embedder
    from lookalike.data.splits import SplitStore
    from lookalike.data.store import DatasetStore
    from lookalike.registry import Registry
    from lookalike.training.heads import HEADS
    from lookalike.vision.faces import FaceBackbone

    steps = Steps()
    steps.wrap(Registry, "prepare", "open registry (migrations, adoption)")
    steps.wrap(Registry, "remove_orphans", "remove leftovers")
    steps.wrap(retrain_module, "train", "train")
    steps.wrap(DatasetStore, "load", "read catalog")
    steps.wrap(SplitStore, "update", "update splits")
    steps.wrap(Embedder, "embed_files", "embed")
    steps.wrap(FaceBackbone, "load", "load backbone")
    for name, head in HEADS.items():
        steps.wrap(head, "fit", f"fit {name}")
    steps.wrap(train_module, "genuine_impostor", "open-set threshold")
    steps.wrap(train_module, "compute_metrics", "test metrics")
    steps.wrap(train_module, "save_model", "save artifact")
    steps.wrap(Registry, "register_model", "register")
    steps.wrap(retrain_module, "load_model", "load artifact")
    steps.wrap(retrain_module, "compare_models", "gate")
    steps.wrap(compare_module, "predicted_labels", "answer test set")
    steps.wrap(compare_module, "mcnemar_p", "McNemar")
    steps.wrap(Registry, "record_decision", "record decision")
    return steps


def breakdown(steps: dict[str, float], total: float) -> list[str]:
    """``steps`` as indented lines, children under their parent, largest first."""
    lines: list[str] = []

    def children(prefix: str) -> list[str]:
        depth = prefix.count(" > ") + 1 if prefix else 0
        return [
            p
            for p in steps
            if p.count(" > ") == depth and (not prefix or p.startswith(prefix + " > "))
        ]

    def walk(prefix: str, indent: int) -> None:
        for path in sorted(children(prefix), key=lambda p: -steps[p]):
            label = path.rsplit(" > ", 1)[-1]
            lines.append(f"{'  ' * indent}{label:<28} {steps[path]:7.3f} s")
            walk(path, indent + 1)

    walk("", 2)
    top = sum(v for p, v in steps.items() if " > " not in p)
    lines.append(f"    {'(not in a step above)':<28} {total - top:7.3f} s")
    return lines


# --- data ------------------------------------------------------------------------------------


def forget_embeddings(home: Path, hashes: set[str] | None) -> None:
    """Drop cached embeddings: those of ``hashes``, or all of them (None)."""
    path = home / "cache" / "embeddings.sqlite"
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            if hashes is None:
                conn.execute("DELETE FROM embeddings")
            else:
                marks = ",".join("?" * len(hashes))
                conn.execute(f"DELETE FROM embeddings WHERE sha256 IN ({marks})", sorted(hashes))
        conn.execute("VACUUM")
    finally:
        conn.close()


@dataclass
class Prepared:
    base: Path  # data dir: base imported, champion trained, new images imported
    new_hashes: set[str]
    n_base: int
    n_new: int
    champion: str


def prepare(root: Path, args: argparse.Namespace) -> Prepared:
    from lookalike.data.importers import import_images
    from lookalike.data.store import DatasetStore
    from lookalike.retrain import retrain

    orl = demo_data.orl_people()
    people = list(orl)[: args.people]
    strangers = list(orl)[args.people : args.people + args.new_people]
    if len(people) < args.people or len(strangers) < args.new_people:
        raise SystemExit(f"ORL has {len(orl)} people; --people + --new-people is too many")
    base_photos = {p: orl[p][: args.base_photos] for p in people}
    new_photos = {p: orl[p][args.base_photos : args.base_photos + 1] for p in people}
    new_photos = {p: v for p, v in list(new_photos.items())[: args.new_known] if v}
    new_photos |= {p: orl[p][:3] for p in strangers}

    home = root / "prepared"
    settings = Settings(home=home, backbone="face")
    # The folded ONNX files do not depend on the data: reuse the bench cache's when present.
    cached = demo_data.default_cache_dir() / "bench-home" / "backbones"
    if cached.is_dir():
        shutil.copytree(cached, home / "backbones")
    start = time.perf_counter()
    base = import_images(class_folders(root / "base", base_photos), settings)
    imported = time.perf_counter() - start
    start = time.perf_counter()
    first = retrain(settings, strict=True)
    trained = time.perf_counter() - start
    before = set(DatasetStore(settings).load().images)
    start = time.perf_counter()
    new = import_images(class_folders(root / "new", new_photos), settings)
    imported_new = time.perf_counter() - start
    new_hashes = set(DatasetStore(settings).load().images) - before
    if base.rejected or new.rejected:
        raise SystemExit(f"photos rejected at import: {base.problems + new.problems}")
    print(
        f"data    : ORL ({demo_data.ORL_CREDIT}), face backbone; base {base.added} photos of"
        f" {len(people)} people (imported in {imported:.1f} s), champion {first.version}"
        f" ({first.report.head}, test accuracy {first.report.metrics['accuracy']}, trained in"
        f" {trained:.1f} s); then {new.added} new photos ({new.added / base.added:.0%}): the"
        f" next photo of {len([p for p in new_photos if p in people])} of them and 3 of each"
        f" of {len(strangers)} new people (import {imported_new:.1f} s, embedding included)"
    )
    return Prepared(home, new_hashes, base.added, new.added, first.version)


@contextmanager
def copy_of(prepared: Prepared, dest: Path, forget: str) -> Iterator[Settings]:
    """A copy of the prepared data dir, its cache emptied ("all"), without the new images
    ("new") or as imported ("none")."""
    shutil.copytree(prepared.base, dest)
    if forget != "none":
        forget_embeddings(dest, None if forget == "all" else prepared.new_hashes)
    try:
        yield Settings(home=dest, backbone="face")
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# --- main ------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    forget: str
    seconds: list[float] = field(default_factory=list)  # wall
    cpu: list[float] = field(default_factory=list)  # this process, all threads
    images: int = 0
    embedded: int = 0
    cached: int = 0
    decision: str = ""
    steps: list[dict[str, float]] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu)


def run_once(row: Row, prepared: Prepared, dest: Path, steps: Steps) -> None:
    from lookalike.retrain import retrain

    with copy_of(prepared, dest, row.forget) as settings:
        steps.reset()
        cpu = time.process_time()
        start = time.perf_counter()
        result = retrain(settings, strict=True, actor="bench")
        row.seconds.append(time.perf_counter() - start)
        row.cpu.append(time.process_time() - cpu)
    row.steps.append(dict(steps.seconds))
    report = result.report
    row.images = report.embedded + report.cached
    row.embedded, row.cached = report.embedded, report.cached
    row.decision = f"{result.version} {'promoted' if result.promoted else 'refused'}"


def verdict(speedup: float) -> str:
    return f"{speedup:.1f}x {'PASS' if speedup >= TARGET_SPEEDUP else 'FAIL'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=36, help="people in the base (36)")
    parser.add_argument("--base-photos", type=int, default=9, help="photos each in the base (9)")
    parser.add_argument("--new-known", type=int, default=24, help="of them, with a new photo")
    parser.add_argument("--new-people", type=int, default=4, help="new people, 3 photos each")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (3)")
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin to (default 2)")
    parser.add_argument("--keep", type=Path, default=None, help="build the data dirs here")
    args = parser.parse_args(argv)

    cpus = pin_cores(args.cores)
    print_machine(
        cpus, ["onnxruntime", "opencv-python-headless", "numpy", "scikit-learn", "sqlalchemy"]
    )
    steps = instrument()
    tmp = tempfile.TemporaryDirectory(prefix="lookalike-retrain-bench-")
    root = args.keep or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        prepared = prepare(root, args)
        rows = [
            Row("from nothing", "all"),
            Row("incremental", "new"),
            Row("incremental, embedded at import", "none"),
        ]
        for i in range(args.repeat):
            for row in rows if i % 2 == 0 else reversed(rows):
                run_once(row, prepared, root / f"run-{row.forget}-{i}", steps)
    finally:
        if args.keep is None:
            tmp.cleanup()

    cold = rows[0]
    header = (
        f"{'retrain':<32} {'images':>6} {'embedded':>8} {'cached':>6} {'seconds':>8}"
        f" {'median':>7} {'CPU s':>6} {'speed-up':>8} {'(CPU)':>6}  decision"
    )
    print(f"\n{header}\n{'-' * (len(header) + 16)}")
    for row in rows:
        print(
            f"{row.name:<32} {row.images:>6} {row.embedded:>8} {row.cached:>6}"
            f" {row.best:>8.2f} {row.median:>7.2f} {row.best_cpu:>6.2f}"
            f" {cold.best / row.best:>7.1f}x {cold.best_cpu / row.best_cpu:>5.1f}x  {row.decision}"
        )
    print(
        f"seconds: the best of {args.repeat} retrain() calls (wall; median beside it), each on a"
        " fresh copy of the data dir, in this process (modules imported); CPU s: this process,"
        " all threads (best run). Speed-up: from nothing / the row."
    )
    inc, at_import = rows[1], rows[2]
    bound = inc.images / max(inc.embedded, 1)
    print(
        f"\ntarget: retrain after {inc.embedded} new images ({inc.embedded / prepared.n_base:.0%})"
        f" at least {TARGET_SPEEDUP:.0f}x faster than from nothing:"
        f"\n  incremental, new images embedded by the retrain: {verdict(cold.best / inc.best)}"
        f" (CPU {cold.best_cpu / inc.best_cpu:.1f}x); it embeds {inc.embedded} of"
        f" {inc.images} images, so at most {bound:.1f}x even with nothing else to do"
        f"\n  incremental as `lookalike import` leaves the new images (embedded on the way in):"
        f" {verdict(cold.best / at_import.best)} (CPU {cold.best_cpu / at_import.best_cpu:.1f}x)"
    )
    for row in (inc, cold):
        run = row.seconds.index(row.best)
        print(f"\nwhere the time goes, {row.name} (the best run, {row.best:.2f} s):")
        print("\n".join(breakdown(row.steps[run], row.best)))
        if row.embedded:
            embed = sum(v for p, v in row.steps[run].items() if p == "train > embed")
            print(f"    = {embed / row.embedded * 1000:.0f} ms per embedded image")
    print(f"\nload average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
