"""The promotion gate: champion and challenger on the same frozen test set, photo by photo.

Both models answer every photo of the challenger's test set version (the newest; it holds
the champion's). The figures compare them on the classes both know:

- same classes: the challenger must have a higher accuracy, the McNemar test on the paired
  answers must call the difference significant (``promotion_alpha``), and no class may lose
  more than ``promotion_max_recall_drop`` of recall. Ties keep the champion.
- personal photos the champion was trained on deleted by their owners since (a visitor's
  kept photo, a contributor; ``data/personal.py``): the champion must not serve any longer,
  and the challenger (trained without them) replaces it whatever the figures say.
- classes added or removed (new contributors, new or removed classes): the champion cannot
  answer the new classes, so on the shared classes the challenger must only be no worse
  (not significantly less accurate, no class recall dropping more than the margin), and it
  must recognise the new classes that have test photos with a mean recall of at least
  ``promotion_new_class_floor``. Contributors' classes have none (their crops always
  train): they are counted, not tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.artifacts import TrainedModel, backbone_for
from lookalike.config import Settings
from lookalike.data.cache import embedding_cache
from lookalike.data.embed import Embedder
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore, ImageRecord, is_contribution, is_visitor


@dataclass
class GateDecision:
    promoted: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def mcnemar_p(only_champion: int, only_challenger: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs (binomial, p = 0.5)."""
    from scipy.stats import binomtest

    n = only_champion + only_challenger
    if n == 0:
        return 1.0
    return float(binomtest(min(only_champion, only_challenger), n, 0.5).pvalue)


def predicted_labels(
    model: TrainedModel, records: list[ImageRecord], settings: Settings
) -> list[str | None]:
    """The model's best class for each photo (None where its backbone found no face)."""
    store = DatasetStore(settings)
    embedder = Embedder(backbone_for(model.info, settings), embedding_cache(settings.data_dir))
    result = embedder.embed_files({r.sha256: store.path_of(r) for r in records})
    have = [r for r in records if r.sha256 in result.vectors]
    answers: dict[str, str] = {}
    if have:
        x = np.stack([result.vectors[r.sha256] for r in have]).astype(np.float32)
        proba, _ = model.score(x)
        for record, best in zip(have, proba.argmax(axis=1).tolist(), strict=True):
            answers[record.sha256] = model.info.labels[int(best)]
    return [answers.get(r.sha256) for r in records]


def _recall(truth: list[str], answers: list[str | None], labels: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for label in sorted(labels):
        hits = [a == t for t, a in zip(truth, answers, strict=True) if t == label]
        if hits:
            out[label] = round(sum(hits) / len(hits), 4)
    return out


def compare_models(
    settings: Settings, champion: TrainedModel, challenger: TrainedModel
) -> GateDecision:
    """Decide whether ``challenger`` replaces ``champion`` (see the module docstring)."""
    catalog = DatasetStore(settings).load()
    present = {r.source for r in catalog.images.values()}
    withdrawn = sorted(set(champion.info.personal_sources) - present)
    test_version = challenger.info.test_version
    hashes = SplitStore(settings).load().test_hashes(test_version)
    old, new = set(champion.info.labels), set(challenger.info.labels)
    contributors = set(challenger.info.contributors)
    shared, added, removed = old & new, new - old, old - new
    records = sorted(
        (catalog.images[h] for h in hashes if h in catalog.images),
        key=lambda r: r.sha256,
    )
    records = [r for r in records if r.label in new]
    truth = [r.label for r in records]
    ans_champion = predicted_labels(champion, records, settings)
    ans_challenger = predicted_labels(challenger, records, settings)

    on_shared = [i for i, t in enumerate(truth) if t in shared]
    ok_a = np.array([ans_champion[i] == truth[i] for i in on_shared], dtype=bool)
    ok_b = np.array([ans_challenger[i] == truth[i] for i in on_shared], dtype=bool)
    n = len(on_shared)
    acc_a = float(ok_a.mean()) if n else None
    acc_b = float(ok_b.mean()) if n else None
    only_a, only_b = int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())
    p_value = mcnemar_p(only_a, only_b)
    shared_truth = [truth[i] for i in on_shared]
    recall_a = _recall(shared_truth, [ans_champion[i] for i in on_shared], shared)
    recall_b = _recall(shared_truth, [ans_challenger[i] for i in on_shared], shared)
    margin = settings.promotion_max_recall_drop
    drops = {
        label: round(recall_a[label] - recall_b.get(label, 0.0), 4)
        for label in recall_a
        if recall_a[label] - recall_b.get(label, 0.0) > margin + 1e-9
    }
    on_added = [i for i, t in enumerate(truth) if t in added]
    recall_new = _recall([truth[i] for i in on_added], [ans_challenger[i] for i in on_added], added)
    mean_new = round(float(np.mean(list(recall_new.values()))), 4) if recall_new else None
    alpha = settings.promotion_alpha
    figures: dict[str, Any] = {
        "champion": champion.info.version,
        "challenger": challenger.info.version,
        "test_version": test_version,
        "n_shared": n,
        "champion_accuracy": None if acc_a is None else round(acc_a, 4),
        "challenger_accuracy": None if acc_b is None else round(acc_b, 4),
        "only_champion_right": only_a,
        "only_challenger_right": only_b,
        "mcnemar_p": round(p_value, 6),
        "alpha": alpha,
        "max_recall_drop": margin,
        "recall_drops": drops,
        "champion_recall": recall_a,
        "challenger_recall": recall_b,
        "classes_added": sorted(added),
        "classes_removed": sorted(removed),
        "new_class_recall": recall_new,
        "new_class_mean_recall": mean_new,
        "new_class_floor": settings.promotion_new_class_floor,
        "withdrawn_visitor_photos": sum(map(is_visitor, withdrawn)),
        "withdrawn_contributors": sum(map(is_contribution, withdrawn)),
        "untested_classes": sorted(added - set(recall_new)),
    }
    significant = p_value < alpha
    drop_text = ", ".join(f"{k} -{v:.2f}" for k, v in sorted(drops.items()))
    shared_text = (
        f"{acc_b:.3f} vs {acc_a:.3f} on the shared classes (p={p_value:.4f})"
        if acc_a is not None and acc_b is not None
        else "no shared test photos"
    )
    if withdrawn:  # deletion is real: nothing decides against it
        return GateDecision(
            True,
            f"Promoted: the champion was trained on {_withdrawn_text(withdrawn)} deleted by"
            f" their owners since, so it may not serve any longer; the challenger, trained"
            f" without them, replaces it ({shared_text}).",
            figures,
        )
    if added or removed:
        change = []
        if added:
            change.append(f"{len(added)} new class(es) the champion cannot score")
        if removed:
            change.append(f"{len(removed)} class(es) no longer in the dataset")
        head = f"The data changed ({'; '.join(change)}): compared on {len(shared)} shared classes."
        if acc_a is not None and acc_b is not None and acc_b < acc_a and significant:
            return GateDecision(
                False,
                f"{head} Refused: significantly less accurate on them ({acc_b:.3f} vs"
                f" {acc_a:.3f}, McNemar p={p_value:.4f} < {alpha}).",
                figures,
            )
        if drops:
            return GateDecision(
                False, f"{head} Refused: recall dropped by more than {margin}: {drop_text}.",
                figures,
            )  # fmt: skip
        if mean_new is not None and mean_new < settings.promotion_new_class_floor:
            return GateDecision(
                False,
                f"{head} Refused: new classes recognised at {mean_new:.3f}, below the floor"
                f" {settings.promotion_new_class_floor}.",
                figures,
            )
        if added and mean_new is None and not added <= contributors:
            return GateDecision(
                False,
                f"{head} Refused: the new classes have no test photos to recognise (add"
                " photos so that some go to the test set).",
                figures,
            )
        new_text = f"; new classes recognised at {mean_new:.3f}" if mean_new is not None else ""
        untested = sorted(added - set(recall_new))
        if untested:
            new_text += f"; {len(untested)} contributor class(es) train only, untested"
        return GateDecision(True, f"{head} Promoted: no worse, {shared_text}{new_text}.", figures)

    if acc_a is None or acc_b is None:
        return GateDecision(False, "Refused: no test photos to compare on.", figures)
    if acc_b <= acc_a:
        verdict = "tie" if acc_b == acc_a else "less accurate"
        return GateDecision(
            False,
            f"Refused ({verdict}): challenger {acc_b:.3f} vs champion {acc_a:.3f} on the same"
            f" {n} test photos; ties keep the champion.",
            figures,
        )
    if not significant:
        return GateDecision(
            False,
            f"Refused: challenger {acc_b:.3f} vs champion {acc_a:.3f} is not significant"
            f" (McNemar p={p_value:.4f} >= {alpha}; {only_b} vs {only_a} discordant photos).",
            figures,
        )
    if drops:
        return GateDecision(
            False,
            f"Refused: more accurate overall but recall dropped by more than {margin}:"
            f" {drop_text}.",
            figures,
        )
    return GateDecision(
        True,
        f"Promoted: challenger {acc_b:.3f} vs champion {acc_a:.3f} on the same {n} test photos"
        f" (McNemar p={p_value:.4f} < {alpha}; no class recall dropped more than {margin}).",
        figures,
    )


def _withdrawn_text(sources: list[str]) -> str:
    photos = sum(map(is_visitor, sources))
    people = sum(map(is_contribution, sources))
    parts = []
    if photos:
        parts.append(f"{photos} visitor photo(s)")
    if people:
        parts.append(f"{people} contributor(s)")
    return " and ".join(parts)
