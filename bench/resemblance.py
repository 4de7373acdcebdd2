"""Resemblance: how stable and how sensible the lookalike answer is, for every scoring tried.

    python bench/resemblance.py [--splits 10]

ORL faces (40 people x 10 photos), embedded once with the product's face backbone. Each split
takes 20 random people as the gallery's classes (all 10 photos) and the other 20 as visitors,
who are nobody in the gallery. An answer names one class, or two when the top two tie (only
scorings with a tie rule ever name two). Columns:

* modal: share of a visitor's photos whose answer names the visitor's most common name
  (top-1: counting only each answer's first name);
* pairs: share of pairs of single photos of one visitor whose answers share a name;
* burst 3 / burst 5: the same for two disjoint random 3- or 5-photo bursts (embeddings
  averaged); sittings: photos 1-5 against 6-10 (ORL's photos were taken at different times);
* in top 3: share of photos whose first name is in the top 3 of the visitor's other 9 photos;
* names: mean names per single-photo answer; hub: share of all strangers' answers taken by
  the most common class (a hub answering everyone would fake stability).

Then the product's three kinds of answer (same person / lookalike / cannot judge) with its
real head, identity threshold and quality checks, gallery of 5 photos per class.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from machine import print_machine

from lookalike.config import DEFAULT_TIE_Z, Settings
from lookalike.demo_data import ORL_CREDIT, orl_people
from lookalike.errors import LookalikeError
from lookalike.scoring.heads import ClassAggregator
from lookalike.scoring.resemblance import Resemblance
from lookalike.training.heads import LogisticHead
from lookalike.training.openset import choose_threshold, genuine_impostor
from lookalike.vision.backbones import create_backbone, l2_normalize
from lookalike.vision.quality import judge, measure

PER = 10
Answer = tuple[int, ...]


class Scorer(Protocol):
    def scores(self, x: np.ndarray) -> np.ndarray: ...
    def tie_gap(self, looks: int) -> float: ...


class NoTies:
    def tie_gap(self, looks: int) -> float:
        return 0.0


class TopK(NoTies):
    """Class score = mean of its k most similar photos (k=1: nearest neighbour)."""

    def __init__(self, g: np.ndarray, gl: np.ndarray, c: int, k: int) -> None:
        self.agg = ClassAggregator(gl, c, k)
        self.g = g

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.agg.scores(np.atleast_2d(x) @ self.g.T)


class Centroid(NoTies):
    def __init__(self, g: np.ndarray, gl: np.ndarray, c: int) -> None:
        self.c = l2_normalize(np.stack([g[gl == k].mean(0) for k in range(c)]))

    def scores(self, x: np.ndarray) -> np.ndarray:
        return np.atleast_2d(x) @ self.c.T


class Csls(Centroid):
    """Centroid minus each class's hubness: its mean similarity to the 10 closest photos of
    other classes (CSLS-style local scaling)."""

    def __init__(self, g: np.ndarray, gl: np.ndarray, c: int) -> None:
        super().__init__(g, gl, c)
        sims = g @ self.c.T
        self.r = np.array([np.sort(sims[gl != k, k])[-10:].mean() for k in range(c)])

    def scores(self, x: np.ndarray) -> np.ndarray:
        return super().scores(x) - self.r


class ZNorm(Centroid):
    """Centroid, each class's score standardised by other classes' photos (z-norm)."""

    def __init__(self, g: np.ndarray, gl: np.ndarray, c: int) -> None:
        super().__init__(g, gl, c)
        sims = g @ self.c.T
        self.m = np.array([sims[gl != k, k].mean() for k in range(c)])
        self.s = np.array([sims[gl != k, k].std() for k in range(c)])

    def scores(self, x: np.ndarray) -> np.ndarray:
        return (super().scores(x) - self.m) / self.s


class Product:
    """The product's scoring (``scoring.resemblance``), with its tie rule at ``tie_z``."""

    def __init__(self, g: np.ndarray, gl: np.ndarray, c: int, tie_z: float) -> None:
        self.r = Resemblance.fit(g, gl, c, tie_z)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.r.scores(x)

    def tie_gap(self, looks: int) -> float:
        return self.r.tie_gap(looks)


SCORINGS: dict[str, Callable[[np.ndarray, np.ndarray, int], Scorer]] = {
    "1-NN": lambda g, gl, c: TopK(g, gl, c, 1),
    "top-3 mean": lambda g, gl, c: TopK(g, gl, c, 3),
    "centroid": Centroid,
    "CSLS centroid": Csls,
    "z-norm centroid": ZNorm,
    "centred centroid": lambda g, gl, c: Product(g, gl, c, 0.0),
    f"centred centroid + ties (product, tie_z {DEFAULT_TIE_Z})": lambda g, gl, c: Product(
        g, gl, c, DEFAULT_TIE_Z
    ),
}


def answer(scorer: Scorer, x: np.ndarray, looks: int = 1) -> list[Answer]:
    s = scorer.scores(x)
    order = np.argsort(-s, axis=1)
    gap = scorer.tie_gap(looks)
    out: list[Answer] = []
    for row, o in zip(s, order, strict=True):
        tie = row[o[0]] - row[o[1]] < gap
        out.append((int(o[0]), int(o[1])) if tie else (int(o[0]),))
    return out


def agree(a: Answer, b: Answer) -> bool:
    return bool(set(a) & set(b))


def burst(x: np.ndarray) -> np.ndarray:
    return l2_normalize(x.mean(0))[None]


def stability(
    make: Callable[[np.ndarray, np.ndarray, int], Scorer],
    x: np.ndarray,
    splits: int,
) -> dict[str, float]:
    rows: dict[str, list[float]] = {
        k: [] for k in ("modal", "top1", "pairs", "b3", "b5", "sit", "top3", "names", "hub")
    }
    for seed in range(splits):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x) // PER)
        classes, visitors = order[:20], order[20:]
        gi = np.concatenate([np.arange(c * PER, (c + 1) * PER) for c in classes])
        scorer = make(x[gi], np.repeat(np.arange(20), PER), 20)
        firsts: list[int] = []
        for v in visitors:
            q = x[v * PER : (v + 1) * PER]
            ans = answer(scorer, q)
            firsts += [a[0] for a in ans]
            named = Counter(n for a in ans for n in a).most_common(1)[0][0]
            rows["modal"].append(np.mean([named in a for a in ans]))
            rows["top1"].append(Counter(a[0] for a in ans).most_common(1)[0][1] / PER)
            rows["pairs"].append(np.mean([agree(a, b) for a, b in combinations(ans, 2)]))
            rows["names"].append(np.mean([len(a) for a in ans]))
            hits = []
            for i in range(PER):
                top3 = np.argsort(-scorer.scores(burst(np.delete(q, i, 0)))[0])[:3]
                hits.append(ans[i][0] in top3)
            rows["top3"].append(np.mean(hits))
            for n, key in ((3, "b3"), (5, "b5")):
                same = []
                for _ in range(20):
                    p = rng.permutation(PER)
                    a = answer(scorer, burst(q[p[:n]]), n)[0]
                    b = answer(scorer, burst(q[p[n : 2 * n]]), n)[0]
                    same.append(agree(a, b))
                rows[key].append(np.mean(same))
            rows["sit"].append(
                agree(answer(scorer, burst(q[:5]), 5)[0], answer(scorer, burst(q[5:]), 5)[0])
            )
        rows["hub"].append(Counter(firsts).most_common(1)[0][1] / len(firsts))
    return {k: float(np.mean(v)) for k, v in rows.items()}


def answer_kinds(x: np.ndarray, judged: np.ndarray, splits: int) -> dict[str, float]:
    """Same person / lookalike / cannot judge with the product's head, threshold and checks:
    20 classes x 5 gallery photos; their other 5 photos and the 20 strangers' 10 visit."""
    out: dict[str, list[float]] = {k: [] for k in ("same", "wrong_same", "named", "stranger_same")}
    for seed in range(splits):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x) // PER)
        classes, strangers = order[:20], order[20:]
        picks = [rng.permutation(PER) + c * PER for c in classes]
        gi = np.concatenate([p[:5] for p in picks])
        qi = np.concatenate([p[5:] for p in picks])
        gl, ql = np.repeat(np.arange(20), 5), np.repeat(np.arange(20), 5)
        head = LogisticHead()
        head.fit(x[gi], gl, 20)
        agg = ClassAggregator(gl, 20, Settings().top_k_per_class)
        threshold, _ = choose_threshold(*genuine_impostor(agg, x[gi], gl), 0.363)

        def same_person(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            best = head.predict_proba(x[idx]).argmax(1)  # noqa: B023 (called in this loop)
            score = agg.scores(x[idx] @ x[gi].T)[np.arange(len(idx)), best]  # noqa: B023
            return (score >= threshold) & judged[idx], best  # noqa: B023

        same, best = same_person(qi)
        out["same"].append(float((same & (best == ql)).mean()))
        out["wrong_same"].append(float((same & (best != ql)).mean()))
        si = np.concatenate([np.arange(s * PER, (s + 1) * PER) for s in strangers])
        s_same, _ = same_person(si)
        out["stranger_same"].append(float(s_same.mean()))
        out["named"].append(float((~s_same & judged[si]).mean()))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    args = parser.parse_args()
    packages = ["onnxruntime", "opencv-python-headless", "numpy"]
    print_machine(sorted(os.sched_getaffinity(0)), packages)
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="lookalike-bench-")))
    people = orl_people()
    ids = sorted(people, key=lambda p: int(p[1:]))
    backbone = create_backbone("face", settings)
    backbone.load()
    vectors, judged = [], []
    start = time.perf_counter()
    for pid in ids:
        for path in sorted(people[pid], key=lambda p: int(p.stem)):
            rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)
            try:
                a = backbone.analyze(rgb)
            except LookalikeError:
                vectors.append(np.zeros(backbone.dim, np.float32))
                judged.append(False)
                continue
            assert a.crop is not None and a.face is not None
            vectors.append(a.vector)
            judged.append(judge(measure(a.crop, a.face), settings) is None)
    x, ok = np.array(vectors), np.array(judged)
    print(
        f"# ORL faces ({ORL_CREDIT}): {len(ids)} people x {PER}, embedded in"
        f" {time.perf_counter() - start:.1f} s with {backbone.key}; judged {ok.mean():.3f};"
        f" {args.splits} random 20/20 splits"
    )

    print("\n## Stability of the lookalike answer (20 classes x 10 photos; 20 strangers visit)\n")
    cols = ("modal", "top1", "pairs", "b3", "b5", "sit", "top3", "names", "hub")
    heads = (
        "modal", "modal top-1", "pairs", "burst 3", "burst 5", "sittings", "in top 3",
        "names", "hub",
    )  # fmt: skip
    print("| scoring | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    for name, make in SCORINGS.items():
        r = stability(make, x, args.splits)
        print(f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")

    print("\n## The tie rule: tie_z against names per answer (product scoring)\n")
    print("| tie_z | modal | pairs | burst 5 | sittings | names |")
    print("|---|---|---|---|---|---|")
    for z in (0.0, 0.25, 0.35, 0.4, 0.5, 0.75):
        r = stability(lambda g, gl, c, z=z: Product(g, gl, c, z), x, args.splits)
        print(
            f"| {z} | {r['modal']:.3f} | {r['pairs']:.3f} | {r['b5']:.3f} | {r['sit']:.3f} |"
            f" {r['names']:.3f} |"
        )

    print("\n## Answer kinds (product head, identity threshold and quality checks)\n")
    k = answer_kinds(x, ok, args.splits)
    print("| gallery people: same person (right) | wrong person | strangers: named lookalike"
          " | strangers called same person |")  # fmt: skip
    print("|---|---|---|---|")
    print(
        f"| {k['same']:.3f} | {k['wrong_same']:.4f} | {k['named']:.3f} | {k['stranger_same']:.4f} |"
    )


if __name__ == "__main__":
    sys.exit(main())
