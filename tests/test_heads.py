"""Heads, the class aggregator, temperature calibration and the open-set threshold, on
synthetic clustered unit vectors (no images, milliseconds)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from lookalike.errors import InvalidInput
from lookalike.scoring.heads import ClassAggregator, restore_head, softmax
from lookalike.training.heads import (
    HEADS,
    GalleryHead,
    LogisticHead,
    create_head,
    fit_temperature,
    list_heads,
)
from lookalike.training.openset import choose_threshold, genuine_impostor


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clusters(
    n_classes: int,
    per_class: int,
    dim: int = 32,
    noise: float = 0.25,
    seed: int = 0,
    centres_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors around ``n_classes`` random unit centres (noise of norm ~``noise``).

    The centres depend on ``centres_seed`` only, so several draws share them."""
    centres = unit(np.random.default_rng(centres_seed).standard_normal((n_classes, dim)))
    rng = np.random.default_rng(1000 + seed)
    y = np.repeat(np.arange(n_classes), per_class)
    x = unit(centres[y] + noise * rng.standard_normal((len(y), dim)) / np.sqrt(dim))
    return x, y, centres


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(proba[np.arange(len(y)), y] + 1e-12).mean())


def npz_roundtrip(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What artifacts.py does with a head's state: npz without pickle."""
    buf = io.BytesIO()
    np.savez(buf, **state)  # type: ignore[arg-type]
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# --- heads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["logistic", "gallery"])
def test_head_fits_clusters_and_restores_identically(kind: str) -> None:
    x, y, centres = clusters(5, 24)
    x_val, y_val, _ = clusters(5, 6, seed=1)
    head = create_head(kind)
    head.fit(x, y, 5, x_val, y_val)

    x_test, y_test, _ = clusters(5, 10, seed=2)
    proba = head.predict_proba(x_test)
    assert proba.shape == (50, 5)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba.argmax(axis=1) == y_test).mean() == 1.0
    # The centres themselves are the clearest examples of their class.
    assert list(head.predict_proba(centres).argmax(axis=1)) == [0, 1, 2, 3, 4]

    params = json.loads(json.dumps(head.params()))  # saved as JSON in model.json
    restored = restore_head(kind, npz_roundtrip(head.state()), params)
    # A saved model restores the prediction-only class (``scoring``) the fitted head extends.
    assert isinstance(head, type(restored)) and restored.kind == head.kind == kind
    np.testing.assert_array_equal(restored.predict_proba(x_test), proba)


def test_logistic_head_with_two_classes_is_not_a_coin_flip() -> None:
    # scikit-learn keeps a single coefficient row for a binary problem; the head must still
    # give each class its own logit (it used to answer 50/50 for everything).
    x, y, _ = clusters(2, 20, seed=3)
    head = LogisticHead()
    head.fit(x, y, 2)
    proba = head.predict_proba(x)
    assert (proba.argmax(axis=1) == y).all()
    assert proba[np.arange(len(y)), y].min() > 0.6
    # Two classes present out of four (labels 1 and 3): the others can never win.
    head.fit(x, np.where(y == 0, 1, 3), 4)
    proba = head.predict_proba(x)
    assert set(proba.argmax(axis=1)) == {1, 3}
    assert proba[:, [0, 2]].max() < 1e-6


def test_logistic_head_classes_absent_from_training_never_win() -> None:
    x, y, _ = clusters(3, 15)
    head = LogisticHead()
    head.fit(x, y, 5)  # classes 3 and 4 have no training photo
    proba = head.predict_proba(x)
    assert proba.shape == (45, 5)
    assert proba[:, 3:].max() < 1e-6
    assert (proba.argmax(axis=1) == y).all()


def test_logistic_head_needs_two_classes() -> None:
    x, _, _ = clusters(1, 5)
    with pytest.raises(InvalidInput) as exc:
        LogisticHead().fit(x, np.zeros(5, np.int64), 3)
    assert exc.value.code == "train.too_few_classes"


def test_temperature_fitted_on_validation_carries_over_to_new_photos() -> None:
    # Overlapping clusters: the validation set decides how sharp the probabilities should be,
    # and that choice carries over to photos neither fit nor calibration saw.
    x, y, _ = clusters(4, 20, noise=2.0)
    x_val, y_val, _ = clusters(4, 25, noise=2.0, seed=5)
    x_new, y_new, _ = clusters(4, 50, noise=2.0, seed=6)
    head = LogisticHead()
    head.fit(x, y, 4)
    assert head.temperature == 1.0
    s = fit_temperature(head._logits(x_val), y_val)
    assert s != 1.0
    uncalibrated = head.predict_proba(x_new)
    head.temperature = s
    calibrated = head.predict_proba(x_new)
    np.testing.assert_array_equal(calibrated.argmax(1), uncalibrated.argmax(1))
    assert nll(calibrated, y_new) < nll(uncalibrated, y_new)


def test_calibration_keeps_strangers_flat_when_validation_is_all_right() -> None:
    # Well-separated classes: every validation photo is right, so plain NLL would sharpen
    # without end and show a stranger (a sixth cluster) as a near-certain lookalike.
    x, y, _ = clusters(6, 10, noise=0.3, centres_seed=3)
    known, known_y = x[y < 5], y[y < 5]
    stranger = x[y == 5]
    x_val, y_val, _ = clusters(6, 6, noise=0.3, seed=7, centres_seed=3)
    keep = y_val < 5
    head = LogisticHead()
    head.fit(known, known_y, 5, x_val[keep], y_val[keep])
    sharp = fit_temperature(head._logits(x_val[keep]), y_val[keep])  # no stranger term
    assert head.temperature < sharp
    assert (head.predict_proba(x_val[keep]).argmax(1) == y_val[keep]).all()
    assert head.predict_proba(x_val[keep]).max(1).mean() > 0.6  # known people stay clear
    assert head.predict_proba(stranger).max(1).mean() < 0.6  # strangers are not "99% X"
    head.temperature = sharp
    assert head.predict_proba(stranger).max(1).mean() > 0.8  # what the stranger term prevents


def test_gallery_head_class_scores_are_mean_of_top_k() -> None:
    # The gallery head is the gallery: its class score is the aggregator's mean of top-k.
    x, y, _ = clusters(3, 6)
    head = GalleryHead(k=2)
    head.fit(x, y, 3)
    expected = ClassAggregator(y, 3, 2).scores(x[:4] @ x.T)
    np.testing.assert_allclose(head.class_scores(x[:4]), expected, atol=1e-6)
    assert head.params()["k"] == 2


def test_create_head_rejects_unknown_names() -> None:
    with pytest.raises(InvalidInput) as exc:
        create_head("nope")
    assert exc.value.code == "train.unknown_head"
    assert "logistic" in exc.value.message and "gallery" in exc.value.message
    with pytest.raises(InvalidInput) as exc2:
        restore_head("nope", {}, {})
    assert exc2.value.code == "model.unknown_head"
    assert set(list_heads()) == set(HEADS) == {"logistic", "gallery"}
    assert all(list_heads().values())


# --- aggregator ------------------------------------------------------------------------------

# Gallery: class 0 has 4 photos, class 1 has 2, class 2 has 1, class 3 none.
AGG_LABELS = np.array([0, 0, 0, 0, 1, 1, 2])


def test_aggregator_mean_of_top_k_by_hand() -> None:
    agg = ClassAggregator(AGG_LABELS, n_classes=4, k=3)
    sims = np.array(
        [
            [0.9, 0.1, 0.5, 0.7, 0.3, 0.6, 0.2],
            [-0.2, -0.4, -0.1, -0.3, 0.8, -0.5, 0.95],
        ],
        dtype=np.float32,
    )
    scores = agg.scores(sims)
    assert scores.shape == (2, 4)
    # Row 0: class 0 = mean(0.9, 0.7, 0.5); class 1 has 2 photos < k: mean(0.3, 0.6);
    # class 2 has one photo: 0.2; class 3 has none: -1.
    np.testing.assert_allclose(scores[0], [0.7, 0.45, 0.2, -1.0], atol=1e-6)
    # Row 1: class 0 = mean(-0.1, -0.2, -0.3); class 1 = mean(0.8, -0.5); class 2 = 0.95.
    np.testing.assert_allclose(scores[1], [-0.2, 0.15, 0.95, -1.0], atol=1e-6)


def test_aggregator_exclude_self_is_leave_one_out() -> None:
    rng = np.random.default_rng(7)
    vecs = unit(rng.standard_normal((7, 8)))
    sims = vecs @ vecs.T
    agg = ClassAggregator(AGG_LABELS, n_classes=4, k=3)
    scores = agg.scores(sims, exclude_self=True)
    for i in range(7):
        for c in range(4):
            others = [sims[i, j] for j in range(7) if AGG_LABELS[j] == c and j != i]
            expected = np.mean(sorted(others, reverse=True)[:3]) if others else -1.0
            assert scores[i, c] == pytest.approx(expected, abs=1e-6), (i, c)
    # By hand: photo 4 (class 1) has one class-1 neighbour left, photo 5; photo 6 is the only
    # photo of class 2, so leaving it out leaves nothing.
    assert scores[4, 1] == pytest.approx(sims[4, 5], abs=1e-6)
    assert scores[6, 2] == -1.0
    # The input is not modified.
    np.testing.assert_allclose(np.diag(sims), 1.0, atol=1e-5)
    # Without exclusion a photo matches itself (similarity 1) within its own class.
    assert agg.scores(sims)[6, 2] == pytest.approx(1.0, abs=1e-5)


def test_aggregator_k_larger_than_every_class() -> None:
    agg = ClassAggregator(AGG_LABELS, n_classes=4, k=10)
    sims = np.linspace(0, 0.6, 7, dtype=np.float32)[None, :]
    np.testing.assert_allclose(
        agg.scores(sims)[0], [sims[0, :4].mean(), sims[0, 4:6].mean(), sims[0, 6], -1.0], atol=1e-6
    )


# --- calibration -------------------------------------------------------------------------


def test_fit_temperature_improves_nll_of_overconfident_logits() -> None:
    rng = np.random.default_rng(11)
    n, c = 300, 4
    y = rng.integers(0, c, n)
    logits = rng.standard_normal((n, c))
    logits[np.arange(n), y] += 1.5  # informative, but wrong for a good share of rows
    overconfident = 25.0 * logits
    s = fit_temperature(overconfident, y)
    assert s < 1.0  # it cools the logits down
    assert nll(softmax(s * overconfident), y) < 0.5 * nll(softmax(overconfident), y)
    assert fit_temperature(overconfident[:0], y[:0]) == 1.0  # no data: leave as is


# --- open set ---------------------------------------------------------------------------------


def test_choose_threshold_separates_genuine_from_impostors() -> None:
    rng = np.random.default_rng(3)
    genuine = rng.uniform(0.55, 0.9, 200)
    impostor = rng.uniform(0.0, 0.35, 300)
    threshold, how = choose_threshold(genuine, impostor, default=0.99)
    assert impostor.max() < threshold <= genuine.min()
    assert how["genuine_accepted"] == 1.0
    assert how["impostor_refused"] == 1.0
    assert how["genuine"] == 200 and how["impostor"] == 300


def test_choose_threshold_overlapping_scores_balances_errors() -> None:
    rng = np.random.default_rng(4)
    genuine = rng.normal(0.6, 0.1, 500)
    impostor = rng.normal(0.3, 0.1, 500)
    threshold, how = choose_threshold(genuine, impostor, default=0.0)
    assert 0.38 < threshold < 0.52  # near the crossing point 0.45
    assert 0.85 < how["genuine_accepted"] < 1.0
    assert 0.85 < how["impostor_refused"] < 1.0


@pytest.mark.parametrize("empty", ["genuine", "impostor", "both"])
def test_choose_threshold_default_without_data(empty: str) -> None:
    some = np.array([0.5, 0.6])
    genuine = np.zeros(0) if empty in ("genuine", "both") else some
    impostor = np.zeros(0) if empty in ("impostor", "both") else some
    threshold, how = choose_threshold(genuine, impostor, default=0.363)
    assert threshold == 0.363
    assert how["method"] == "default"


def test_genuine_impostor_on_clustered_gallery() -> None:
    x, y, _ = clusters(4, 6, noise=0.2)
    q, qy, _ = clusters(4, 2, noise=0.2, seed=9)
    agg = ClassAggregator(y, 4, 3)
    genuine, impostor = genuine_impostor(agg, x, y, q, qy)
    # Leave-one-out over 24 gallery photos + 8 queries.
    assert len(genuine) == len(impostor) == 32
    assert genuine.min() > impostor.max()


def _dense_genuine_impostor(
    agg: ClassAggregator, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The leave-one-out scores computed at once on the whole gallery (the reference)."""
    scores = agg.scores(x @ x.T, exclude_self=True)
    rows = np.arange(len(y))
    own = scores[rows, y]
    others = scores.copy()
    others[rows, y] = -np.inf
    return own[own > -1.0], others.max(axis=1)


def test_genuine_impostor_in_blocks_equals_the_whole_gallery_at_once() -> None:
    x, y, _ = clusters(5, 7, noise=0.4)
    agg = ClassAggregator(y, 5, 3)
    genuine, impostor = genuine_impostor(agg, x, y, block_rows=4)  # 35 rows: 9 blocks
    want_genuine, want_impostor = _dense_genuine_impostor(agg, x, y)
    np.testing.assert_allclose(genuine, want_genuine, atol=1e-6)
    np.testing.assert_allclose(impostor, want_impostor, atol=1e-6)


def test_genuine_impostor_leaves_out_a_sample_of_a_large_gallery() -> None:
    x, y, _ = clusters(5, 20, noise=0.4)
    agg = ClassAggregator(y, 5, 3)
    genuine, impostor = genuine_impostor(agg, x, y, max_leave_one_out=30, block_rows=7)
    assert len(genuine) == len(impostor) == 30
    want_genuine, want_impostor = _dense_genuine_impostor(agg, x, y)
    # Each sampled photo's scores are exactly its scores against the whole gallery.
    assert set(np.round(genuine, 5)) <= set(np.round(want_genuine, 5))
    assert set(np.round(impostor, 5)) <= set(np.round(want_impostor, 5))
    again, _ = genuine_impostor(agg, x, y, max_leave_one_out=30)
    np.testing.assert_allclose(np.sort(again), np.sort(genuine), atol=1e-6)  # seeded: same sample


def test_choose_threshold_agrees_with_counting_every_pair() -> None:
    rng = np.random.default_rng(5)
    genuine = np.round(rng.normal(0.55, 0.12, 400), 2)  # rounded: many ties
    impostor = np.round(rng.normal(0.35, 0.12, 300), 2)
    threshold, how = choose_threshold(genuine, impostor, default=0.0)
    candidates = np.unique(np.concatenate([genuine, impostor]))
    mids = np.concatenate([[candidates[0] - 1e-3], (candidates[1:] + candidates[:-1]) / 2])
    accept = (genuine[None, :] >= mids[:, None]).mean(axis=1)
    refuse = (impostor[None, :] < mids[:, None]).mean(axis=1)
    balanced = (accept + refuse) / 2
    ties = np.flatnonzero(np.isclose(balanced, balanced.max()))
    best = int(ties[len(ties) // 2])
    assert threshold == pytest.approx(mids[best])
    assert how["genuine_accepted"] == round(float(accept[best]), 4)
    assert how["impostor_refused"] == round(float(refuse[best]), 4)


# --- a large gallery searched by an index --------------------------------------------------


def test_near_scores_through_an_index_agree_with_every_photo_compared() -> None:
    from lookalike.scoring.heads import GalleryHead
    from lookalike.scoring.index import IvfIndex

    x, y, _ = clusters(40, 60, dim=32, noise=0.5)  # 2,400 photos
    queries, _, _ = clusters(40, 1, dim=32, noise=0.5, seed=3)
    agg = ClassAggregator(y, 40, 3)
    search = IvfIndex(32)
    search.add(np.arange(len(x)), x)
    exact = agg.scores(queries @ x.T)
    for q, want in zip(queries, exact, strict=True):
        scores, rows, sims = agg.near_scores(q, x, search, 256)
        assert len(rows) == 256 and np.all(np.diff(sims) <= 0)  # nearest first
        np.testing.assert_allclose(sims, x[rows] @ q, atol=1e-5)
        assert int(np.argmax(scores)) == int(np.argmax(want))  # the same best class...
        scored = np.unique(y[rows])  # ...and the candidates' classes scored exactly
        np.testing.assert_allclose(scores[scored], want[scored], atol=1e-5)
        others = np.setdiff1d(np.arange(40), scored)
        assert np.all(scores[others] == np.float32(sims.min()))  # the farthest candidate's

    head = GalleryHead(k=3)
    head.vectors, head.labels, head.n_classes = x, y, 40
    dense = head.predict_proba(queries)
    head.index_vectors(1000)
    for q, want in zip(queries, dense, strict=True):
        assert int(np.argmax(head.predict_proba(q[None])[0])) == int(np.argmax(want))


def test_fit_temperature_on_many_photos_uses_a_sample_and_agrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lookalike.training import heads as training_heads

    rng = np.random.default_rng(12)
    n, c = 3 * training_heads.CALIBRATION_MAX_ROWS, 6
    y = rng.integers(0, c, n)
    logits = rng.standard_normal((n, c))
    logits[np.arange(n), y] += 1.5
    sampled = fit_temperature(25.0 * logits, y)
    monkeypatch.setattr(training_heads, "CALIBRATION_MAX_ROWS", n)  # every photo
    everything = fit_temperature(25.0 * logits, y)
    assert sampled < 1.0 and abs(np.log(sampled) - np.log(everything)) < np.log(1.2)
