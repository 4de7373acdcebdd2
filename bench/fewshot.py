"""Few-shot accuracy, robustness, open set and stability on the ORL faces (40 people x 10).

    python bench/fewshot.py [--seeds 5] [--skip-image]

Every photo is embedded once per backbone (and once per degradation), then each figure is
averaged over seeded splits. Uses the product's own pieces: backbones, heads, the class
aggregator and the open-set threshold rule, so what is measured is what answers visitors.
Targets (issue "core engine"): 1.0 on clean ORL at 1 photo per person, >= 0.9 on every
degradation printed, stability >= 0.9, head training under 1 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from lookalike.config import Settings
from lookalike.demo_data import ORL_CREDIT, orl_people
from lookalike.errors import LookalikeError
from lookalike.scoring.heads import ClassAggregator
from lookalike.training.heads import Head, create_head
from lookalike.training.openset import choose_threshold, genuine_impostor
from lookalike.training.train import DEFAULT_THRESHOLDS
from lookalike.vision.backbones import Backbone, create_backbone

HEADS = ("logistic", "gallery")


# --- degradations of a query photo (RGB uint8) -> RGB uint8 -----------------------------
def blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), 2.0)


def jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)


def dark(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img.astype(np.float32) * 0.25, 0, 255).astype(np.uint8)


def rotate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def tiny(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face shrunk to ~36 px wide inside a 640x480 frame."""
    small = cv2.resize(img, (36, 44), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[200:244, 300:336] = small
    return canvas


DEGRADATIONS: dict[str, tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {
    "blur": ("Gaussian blur sigma 2 px (on a 92x112 photo)", blur),
    "jpeg": ("JPEG quality 10", jpeg),
    "noise": ("Gaussian noise sigma 20/255", noise),
    "dark": ("brightness x0.25", dark),
    "rotate": ("rotated 20 degrees", rotate),
    "tiny": ("face 36x44 px in a 640x480 frame", tiny),
}


def embed_all(backbone: Backbone, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """(vectors, ok mask, seconds); a photo without a face gets a zero vector and ok=False."""
    out = np.zeros((len(images), backbone.dim), np.float32)
    ok = np.zeros(len(images), bool)
    start = time.perf_counter()
    for i, img in enumerate(images):
        try:
            out[i] = backbone.analyze(img).vector
            ok[i] = True
        except LookalikeError:
            pass
    return out, ok, time.perf_counter() - start


def split(rng: np.random.Generator, people: int, per: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the 400 photos, person-major) of k train photos per person and the rest."""
    train, query = [], []
    for p in range(people):
        order = rng.permutation(per)
        train += [p * per + i for i in order[:k]]
        query += [p * per + i for i in order[k:]]
    return np.array(train), np.array(query)


def accuracy(head_name: str, x: np.ndarray, y: np.ndarray, tr: np.ndarray, q: np.ndarray,
             xq: np.ndarray | None = None, okq: np.ndarray | None = None,
             settings: Settings | None = None) -> tuple[float, float]:  # fmt: skip
    settings = settings or Settings()
    kwargs = {"k": settings.top_k_per_class} if head_name == "gallery" else {}
    head = create_head(head_name, **kwargs)
    start = time.perf_counter()
    head.fit(x[tr], y[tr], int(y.max()) + 1)
    fit = time.perf_counter() - start
    queries = x[q] if xq is None else xq[q]
    pred = head.predict_proba(queries).argmax(1)
    right = pred == y[q]
    if okq is not None:
        right &= okq[q]  # no face found = a wrong answer
    return float(right.mean()), fit


def open_set_answer(
    head: Head, agg: ClassAggregator, x: np.ndarray, gallery: np.ndarray, thr: float,
    ok: np.ndarray, idx: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(predicted class, accepted as a strong match) for photos ``idx``."""
    pred = head.predict_proba(x[idx]).argmax(1)
    score = agg.scores(x[idx] @ x[gallery].T)[np.arange(len(idx)), pred]
    return pred, (score >= thr) & ok[idx]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--skip-image", action="store_true", help="skip the image backbone")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    settings = Settings(home=home)
    people = orl_people()
    photos = [p for pid in people for p in people[pid]]
    per = len(people["s1"])
    y = np.repeat(np.arange(len(people)), per)
    rgb = [
        cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB) for p in photos
    ]
    print(f"# ORL faces ({ORL_CREDIT}): {len(people)} people x {per} photos, {args.seeds} seeds")
    print(
        f"# machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()},"
        f" Python {sys.version.split()[0]}"
    )

    backbones = ["face"] + ([] if args.skip_image else ["image"])
    clean: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in backbones:
        bb = create_backbone(name, settings)
        bb.load()
        vecs, ok, secs = embed_all(bb, rgb)
        clean[name] = (vecs, ok)
        print(
            f"# embedded {len(rgb)} photos with {bb.key} in {secs:.1f} s;"
            f" faces found {ok.mean():.3f}"
        )

    # 1. Few-shot accuracy -------------------------------------------------------------------
    print("\n## Few-shot accuracy (clean queries; mean over seeds)\n")
    print("| backbone | head | 1 photo/person | 3 photos | 5 photos | head fit (s, 5 photos) |")
    print("|---|---|---|---|---|---|")
    for name in backbones:
        x, ok = clean[name]
        for head in HEADS:
            cells, fit5 = [], 0.0
            for k in (1, 3, 5):
                accs, fits = [], []
                for seed in range(args.seeds):
                    tr, q = split(np.random.default_rng(seed), len(people), per, k)
                    a, f = accuracy(head, x, y, tr, q, okq=ok, settings=settings)
                    accs.append(a)
                    fits.append(f)
                cells.append(f"{np.mean(accs):.3f}")
                if k == 5:
                    fit5 = float(np.mean(fits))
            print(f"| {name} | {head} | {' | '.join(cells)} | {fit5:.3f} |")

    # 2. Degraded queries (face backbone; gallery of clean photos) --------------------------
    face = create_backbone("face", settings)
    x, ok = clean["face"]
    print("\n## Degraded queries (face backbone, 5 clean photos/person in the gallery)\n")
    print("| degradation | strength | faces found | logistic | gallery |")
    print("|---|---|---|---|---|")
    for dname, (desc, fn) in DEGRADATIONS.items():
        rng = np.random.default_rng(123)
        degraded = [fn(img, rng) for img in rgb]
        xd, okd = embed_all(face, degraded)[:2]
        row = []
        for head in HEADS:
            accs = []
            for seed in range(args.seeds):
                tr, q = split(np.random.default_rng(seed), len(people), per, 5)
                accs.append(accuracy(head, x, y, tr, q, xq=xd, okq=okd, settings=settings)[0])
            row.append(f"{np.mean(accs):.3f}")
        print(f"| {dname} | {desc} | {okd.mean():.3f} | {' | '.join(row)} |")

    # 3. Open set: 30 known people, 10 strangers -------------------------------------------
    print("\n## Open set (face; 30 known people x 5 photos, 10 strangers x 10 photos)\n")
    print("| head | strangers told 'no strong match' | known matched correctly | threshold |")
    print("|---|---|---|---|")
    for head in HEADS:
        refused, matched, thresholds = [], [], []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(people))
            known, strangers = order[:30], order[30:]
            remap = {int(p): i for i, p in enumerate(known)}
            tr, q = [], []
            for p in known:
                photos_p = rng.permutation(per) + p * per
                tr += list(photos_p[:5])
                q += list(photos_p[5:])
            tr_a, q_a = np.array(tr), np.array(q)
            y_tr = np.array([remap[int(y[i])] for i in tr_a])
            y_q = np.array([remap[int(y[i])] for i in q_a])
            kwargs = {"k": settings.top_k_per_class} if head == "gallery" else {}
            model = create_head(head, **kwargs)
            model.fit(x[tr_a], y_tr, 30)
            agg = ClassAggregator(y_tr, 30, settings.top_k_per_class)
            gen, imp = genuine_impostor(agg, x[tr_a], y_tr)
            thr, _ = choose_threshold(gen, imp, DEFAULT_THRESHOLDS["face"])
            thresholds.append(thr)

            s_idx = np.concatenate([np.arange(p * per, (p + 1) * per) for p in strangers])
            _, s_accepted = open_set_answer(model, agg, x, tr_a, thr, ok, s_idx)
            refused.append(1 - s_accepted.mean())
            pred_q, q_accepted = open_set_answer(model, agg, x, tr_a, thr, ok, q_a)
            matched.append(((pred_q == y_q) & q_accepted).mean())
        print(
            f"| {head} | {np.mean(refused):.3f} | {np.mean(matched):.3f} |"
            f" {np.mean(thresholds):.3f} |"
        )

    # 4. Stability: 20 classes, the other 20 people visit -------------------------------------
    print("\n## Stability (face; 20 people x 5 photos as classes, 20 other people visit x 10)\n")
    print("| head | share of a visitor's photos with their most common answer |")
    print("|---|---|")
    for head in HEADS:
        shares = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(people))
            classes, visitors = order[:20], order[20:]
            tr = np.concatenate([rng.permutation(per)[:5] + p * per for p in classes])
            y_tr = np.repeat(np.arange(20), 5)
            kwargs = {"k": settings.top_k_per_class} if head == "gallery" else {}
            model = create_head(head, **kwargs)
            model.fit(x[tr], y_tr, 20)
            for v in visitors:
                pred = model.predict_proba(x[v * per : (v + 1) * per]).argmax(1)
                shares.append(Counter(pred.tolist()).most_common(1)[0][1] / per)
        print(f"| {head} | {np.mean(shares):.3f} |")


if __name__ == "__main__":
    main()
