"""Training on a large dataset: what the steps after embedding cost at 10k-200k photos.

    python bench/train_scale.py [--sizes 10000,50000,200000] [--per-class 50]

Once every photo is embedded (cached), training fits the heads, chooses the identity
threshold on leave-one-out gallery scores plus validation photos (``training.openset``),
fits the resemblance calibration, and scores the test set. Each of these compares photos
with the whole gallery; done at once, a 60k-photo gallery against itself is a 14 GB matrix.
This measures each step on synthetic faces around real ORL embeddings (bench/gallery.py's
``Faces``): time and the process's peak resident memory, one fresh process per size (so
one size's peak does not hide the next one's), and what one visitor's photo then costs to
score against that gallery (probabilities and match scores, p50 of 50), every photo
compared and through a faiss index (``gallery_index_min_size``: the index's build time, the
one-photo time, and how often its best class is the exact one's). The logistic head
(scikit-learn) is left out by default: its cost is the solver's, not the gallery's
(``--logistic`` adds it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import _support  # noqa: F401
import numpy as np
from gallery import Faces, orl_embeddings
from machine import load, pin_cores, print_machine

from lookalike.scoring.heads import NEAR_CANDIDATES, ClassAggregator
from lookalike.scoring.index import index_of
from lookalike.scoring.resemblance import Resemblance
from lookalike.training.heads import create_head
from lookalike.training.openset import choose_threshold, genuine_impostor


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(n: int, per_class: int, logistic: bool) -> dict[str, float]:
    """The steps for ``n`` training photos (plus 15% validation and test photos each)."""
    faces = Faces(*orl_embeddings())
    classes = max(2, n // per_class)
    centres = faces.identities(classes)
    rng = np.random.default_rng(1)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        owner = np.concatenate([np.arange(classes), rng.integers(0, classes, count - classes)])
        return faces.photos(centres, owner), owner

    x_tr, y_tr = draw(n)
    x_va, y_va = draw(max(classes, int(0.15 * n)))
    x_te, y_te = draw(max(classes, int(0.15 * n)))
    out: dict[str, float] = {"classes": classes, "start_mb": peak_mb()}

    def step(name: str, run: object) -> object:
        start = time.perf_counter()
        result = run()  # type: ignore[operator]
        out[f"{name}_s"] = time.perf_counter() - start
        out[f"{name}_mb"] = peak_mb()
        return result

    head = create_head("gallery", k=3)
    step("gallery_fit", lambda: head.fit(x_tr, y_tr, classes, x_va, y_va))
    if logistic:
        step("logistic_fit", lambda: create_head("logistic").fit(x_tr, y_tr, classes, x_va, y_va))
    agg = ClassAggregator(y_tr, classes, 3)
    genuine, impostor = step("openset", lambda: genuine_impostor(agg, x_tr, y_tr, x_va, y_va))  # type: ignore[misc]
    step("threshold", lambda: choose_threshold(genuine, impostor, 0.363))
    step("resemblance", lambda: Resemblance.fit(x_tr, y_tr, classes, 1.0))
    proba = step("test", lambda: head.predict_proba(x_te))
    out["test_accuracy"] = float((np.asarray(proba).argmax(axis=1) == y_te).mean())
    times = []  # one visitor's photo, as a request scores it (probabilities + match scores)
    for q in x_te[:50]:
        start = time.perf_counter()
        head.predict_proba(q[None])
        agg.scores(q[None] @ x_tr.T)
        times.append(time.perf_counter() - start)
    out["query_ms"] = float(np.median(times)) * 1000
    # The same through faiss, as a serving process does from ``gallery_index_min_size`` on.
    start = time.perf_counter()
    search = index_of(x_tr, 1)
    head.index_vectors(1)
    out["index_s"] = time.perf_counter() - start
    times, same = [], 0
    for q in x_te[:50]:
        start = time.perf_counter()
        proba_q = head.predict_proba(q[None])
        agg.near_scores(q, x_tr, search, NEAR_CANDIDATES)
        times.append(time.perf_counter() - start)
        same += int(proba_q.argmax() == np.asarray(proba)[len(times) - 1].argmax())
    out["index_query_ms"] = float(np.median(times)) * 1000
    out["index_same_answer"] = same / len(times)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--logistic", action="store_true")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.per_class, args.logistic)))
        return 0
    cpus = pin_cores(args.cores)
    print_machine(cpus, ["numpy", "scikit-learn"])
    steps = ["gallery_fit"] + (["logistic_fit"] if args.logistic else [])
    steps += ["openset", "threshold", "resemblance", "test"]
    print(f"load average before: {load()}\n")
    head = " | ".join(f"{s} s" for s in steps)
    print(
        f"| photos | classes | {head} | peak MB | test acc | one photo ms | index build s"
        " | one photo ms, index | same answer |"
    )
    print("|---" * (len(steps) + 8) + "|")
    for n in [int(s) for s in args.sizes.split(",")]:
        cmd = [sys.executable, str(Path(__file__)), "--one", str(n)]
        cmd += ["--per-class", str(args.per_class)] + (["--logistic"] if args.logistic else [])
        found = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
        peak = max(v for k, v in found.items() if k.endswith("_mb"))
        times = " | ".join(f"{found[f'{s}_s']:.2f}" for s in steps)
        print(
            f"| {n:,} | {int(found['classes']):,} | {times} | {peak:,.0f} |"
            f" {found['test_accuracy']:.3f} | {found['query_ms']:.1f} | {found['index_s']:.1f}"
            f" | {found['index_query_ms']:.1f} | {found['index_same_answer']:.2f} |",
            flush=True,
        )
    print(f"\nload average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
