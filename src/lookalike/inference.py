"""Predictor: bytes -> decode -> detect -> judge quality -> embed -> head -> answer.

Three kinds of answer: "this is X" (the identity score passes the threshold learnt on the
gallery), "you look like X" (everyone else: lookalikes ranked and given a strength by
``scoring.resemblance``, two names when they tie), or ``CannotJudge`` raised (no face, or a
face too small, dark or blurred).

Set up once (model and backbone load lazily on the first call, or in ``load()``), then
answer many photos. Several photos of the same person (a webcam burst) are answered
together: their embeddings are averaged over the frames where a face was found, so one
blink or blurred frame does not decide the answer.

A server answering several requests at once builds its ``Predictor`` with ``workers`` > 1
(see ``Backbones``): that many photos are analysed side by side, each by a backbone with one
inference thread, and a photo that arrives while nothing else is being analysed goes to a
backbone that uses every core, for the latency of a lone request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.artifacts import ModelInfo, TrainedModel, backbone_for, load_model
from lookalike.config import Settings, get_settings
from lookalike.data.store import DatasetStore
from lookalike.errors import (
    CannotJudge,
    InvalidInput,
    ModelUnavailable,
    NoFaceFound,
)
from lookalike.follow import ChampionFollower
from lookalike.scoring.resemblance import strength_phrase, strength_words
from lookalike.vision.backbones import Analysis, Backbone, Face, l2_normalize
from lookalike.vision.images import DecodedImage, decode_image
from lookalike.vision.quality import FaceQuality, judge, measure

log = logging.getLogger("lookalike.inference")

# A champion whose artifact failed to load is tried again after this many seconds.
SWAP_RETRY_SECONDS = 30.0


@dataclass
class Neighbour:
    label: str
    similarity: float
    sha256: str  # a dataset photo's ("" for a contributor's crop)
    path: str  # its file, or the crop's object store key
    crop: tuple[str, int] | None = None  # a contributor's crop: (contribution id, number)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "similarity": round(self.similarity, 4),
            "sha256": self.sha256,
            "path": self.path,
        }


@dataclass
class LookalikeMatch:
    """One class the visitor resembles, with how strongly (see ``scoring.resemblance``)."""

    label: str
    score: float  # centred-centroid cosine
    strength: float  # share of strangers who resemble anyone here less (0..1)
    reference: Neighbour | None  # the class's reference photo closest to the visitor

    @property
    def strength_words(self) -> str:
        """One of "very strong", "strong", "moderate" or "slight"."""
        return strength_words(self.strength)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "strength": round(self.strength, 4),
            "strength_words": self.strength_words,
            "reference": self.reference.to_dict() if self.reference else None,
        }


@dataclass
class Visit:
    """Earlier looks of the same visitor (photos or bursts), answered together with the next."""

    vector: np.ndarray  # the mean of their looks' (unit) embeddings: not normalised
    looks: int
    backbone_key: str


class AnswerKind(StrEnum):
    SAME_PERSON = "same_person"  # "this is X": the identity score passes the threshold
    LOOKALIKE = "lookalike"  # "you look like X": everyone else


SAME_PERSON = AnswerKind.SAME_PERSON
LOOKALIKE = AnswerKind.LOOKALIKE


@dataclass(frozen=True)
class SkippedFrame:
    """A photo of a burst that gave no usable face, and why (the others answered)."""

    index: int  # 0-based, in the order sent
    code: str  # the error code it would have had alone (face.not_found, face.too_small, ...)
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass
class Prediction:
    kind: AnswerKind
    names: list[str]  # who the answer names: one, or two when they tie
    lookalikes: list[LookalikeMatch]  # the strongest first (same person: that person first)
    best_label: str  # the answer's first name
    probability: float  # the head's probability of ``best_label``
    probabilities: list[tuple[str, float]]  # every class, best first
    match_score: float  # identity score of the head's best class (vs ``threshold``)
    threshold: float
    nearest: list[Neighbour]
    faces: list[Face]
    face_index: int | None
    frames_used: int
    looks: int  # photos or bursts averaged (a visit's earlier ones included)
    model_version: str
    latency_ms: float
    vector: np.ndarray  # the query embedding, L2-normalised (never logged or stored)
    visit_mean: np.ndarray  # the mean of the looks' embeddings (to carry the visit on)
    backbone_key: str  # the embedding space of ``vector``
    quality: FaceQuality | None = None
    skipped: list[SkippedFrame] = field(default_factory=list)
    frame_index: int = 0  # the frame ``faces`` and ``image`` come from (the first one used)
    image: DecodedImage | None = field(default=None, repr=False)  # that frame, decoded

    @property
    def label(self) -> str | None:
        """Who the visitor is, when they are someone in the gallery; else None."""
        return self.names[0] if self.kind == SAME_PERSON else None

    @property
    def tie(self) -> bool:
        return len(self.names) > 1

    @property
    def no_strong_match(self) -> bool:
        """Not someone in the gallery: the answer is their lookalikes."""
        return self.kind != SAME_PERSON

    @property
    def face(self) -> Face | None:
        return None if self.face_index is None else self.faces[self.face_index]

    def as_enrolled(self, name: str, score: float, reference: Neighbour | None) -> Prediction:
        """This answer turned into "this is ``name``": a contributor enrolled since the
        model was trained (not one of its classes) passed the identity threshold with
        ``score``; ``reference``: their crop closest to the photo. The model's classes stay
        as the lookalikes."""
        me = LookalikeMatch(label=name, score=score, strength=1.0, reference=reference)
        return replace(
            self,
            kind=SAME_PERSON,
            names=[name],
            best_label=name,
            probability=1.0,
            match_score=score,
            lookalikes=[me, *self.lookalikes[: max(0, len(self.lookalikes) - 1)]],
        )

    def visit(self) -> Visit:
        """This answer's looks, to be answered together with the visitor's next photo."""
        return Visit(self.visit_mean, self.looks, self.backbone_key)

    @property
    def message(self) -> str:
        """The answer in one sentence, the same in the CLI and on the page."""
        if self.kind == SAME_PERSON:
            return f"This is {self.names[0]}."
        first = self.lookalikes[0]
        if self.tie:
            return (
                f"You look like {self.names[0]} and {self.names[1]} about equally: between the two."
            )
        return (
            f"You look like {first.label}: a {strength_words(first.strength)} resemblance,"
            f" {strength_phrase(first.strength)}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": {
                "kind": str(self.kind),
                "names": self.names,
                "tie": self.tie,
                "message": self.message,
                "lookalikes": [x.to_dict() for x in self.lookalikes],
                "looks": self.looks,
            },
            "label": self.label,
            "best_label": self.best_label,
            "probability": round(self.probability, 4),
            "no_strong_match": self.no_strong_match,
            "match_score": round(self.match_score, 4),
            "threshold": round(self.threshold, 4),
            "probabilities": [
                {"label": k, "probability": round(v, 4)} for k, v in self.probabilities
            ],
            "nearest": [n.to_dict() for n in self.nearest],
            "faces_found": len(self.faces),
            "faces": [{"number": i + 1, **f.to_dict()} for i, f in enumerate(self.faces)],
            "face_index": self.face_index,
            "face_box": self.face.to_dict()["box"] if self.face else None,
            "quality": self.quality.to_dict() if self.quality else None,
            "frames_used": self.frames_used,
            "frame_index": self.frame_index,
            "model_version": self.model_version,
            "latency_ms": round(self.latency_ms, 1),
            "skipped_frames": [s.to_dict() for s in self.skipped],
        }


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")[
            "malloc_trim"
        ]
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


def release_freed_memory() -> None:
    """Hand the memory freed after loading a backbone back to the system (glibc only).

    Loading parses and rewrites the ONNX graphs, so most of what it allocates is freed again;
    glibc keeps freed memory in the allocating thread's own heap, and a backbone loaded in a
    server thread would otherwise keep about 100 MB of garbage resident.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Backbones:
    """The backbones of one loaded model, and which photo is analysed by which.

    ``workers`` 1: one backbone, shared by every caller at once (it uses every core and needs
    no lock). ``workers`` > 1 (a server): the same backbone (``wide``) takes a photo that
    arrives while nothing else is being analysed, for the latency of a lone request; while
    one is, photos go to backbones with one inference thread each (one per core: no thread
    contention), created when first needed (about 0.1 s, once), at most ``workers`` of them;
    further photos wait for one to be free. At most ``workers`` + 1 photos are analysed at
    once, which also bounds the memory inference takes.

    Measured on 2 cores (face, flip TTA, 640x480 JPEGs; ``bench/serve.py``): a lone photo
    takes the same time as before; 8 callers in process (decode + analyze) go from 39 to 48
    photos/s; through the HTTP server, 8 concurrent requests get about 5% more requests/s
    for 7% less CPU each, and at 32 the server's RSS stays near 470 MB instead of 690 MB
    (every concurrent run on one shared onnxruntime session grows its memory arena).
    """

    def __init__(
        self,
        wide: Backbone,
        workers: int = 1,
        make_narrow: Callable[[], Backbone] | None = None,
    ) -> None:
        if workers > 1 and make_narrow is None:
            raise ValueError("workers > 1 needs make_narrow")
        self.wide = wide
        self.key = wide.key
        self.workers = workers
        self.narrow: list[Backbone] = []  # the one-thread backbones created so far
        self._make_narrow = make_narrow
        self._free: list[Backbone] = []
        self._creating = 0
        self._wide_free = True
        self._busy = 0  # photos being analysed
        self._cond = threading.Condition()

    @classmethod
    def build(cls, info: ModelInfo, settings: Settings, workers: int = 1) -> Backbones:
        """Backbones for model ``info``, the wide one loaded."""
        wide = backbone_for(info, settings)
        wide.load()
        release_freed_memory()

        def make_narrow() -> Backbone:
            backbone = backbone_for(info, settings)
            backbone.threads = 1
            backbone.load()
            release_freed_memory()
            return backbone

        return cls(wide, workers, make_narrow)

    @contextmanager
    def use(self) -> Iterator[Backbone]:
        """A backbone for one photo, given back when done."""
        if self.workers <= 1:
            yield self.wide
            return
        backbone = self._acquire()
        try:
            yield backbone
        finally:
            with self._cond:
                self._busy -= 1
                if backbone is self.wide:
                    self._wide_free = True
                else:
                    self._free.append(backbone)
                self._cond.notify()

    def _acquire(self) -> Backbone:
        with self._cond:
            while True:
                if self._busy == 0 and self._wide_free:
                    self._wide_free = False
                    self._busy += 1
                    return self.wide
                if self._free:
                    self._busy += 1
                    return self._free.pop()
                if len(self.narrow) + self._creating < self.workers:
                    self._creating += 1
                    break
                self._cond.wait()
        assert self._make_narrow is not None
        try:
            backbone = self._make_narrow()  # outside the lock: others go on meanwhile
        except BaseException:
            with self._cond:
                self._creating -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._creating -= 1
            self.narrow.append(backbone)
            self._busy += 1
        return backbone


def _registry_unavailable(exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"The model registry cannot be read ({type(exc).__name__}); check the database.",
        code="model.registry_unavailable",
    )


class Predictor:
    def __init__(
        self,
        settings: Settings | None = None,
        version: str | None = None,
        *,
        workers: int = 1,
        champion: Callable[[], str | None] | None = None,
    ) -> None:
        """``version``: pin a model version (default: follow the registry's champion, asked
        through ``champion`` between requests). ``workers``: photos analysed at the same time
        by backbones of their own (see ``Backbones``); 1 (the default) shares one backbone
        between all callers, the right choice for one caller."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.settings = settings or get_settings()
        self.pinned_version = version
        self.workers = workers
        self._champion = champion
        # The model and its backbones: one tuple, swapped in one assignment, so a concurrent
        # reload never pairs one version's model with another version's backbones. A new
        # champion is loaded in the background, beside the old one (see lookalike.follow).
        self._follower: ChampionFollower[tuple[TrainedModel, Backbones]] = ChampionFollower(
            self._wanted,
            self._build,
            lambda loaded: loaded[0].info.version,
            background=True,
            retry_seconds=SWAP_RETRY_SECONDS,
            unreadable=_registry_unavailable,
            logger=log,
        )

    @property
    def home(self) -> Path:
        return Path(self.settings.home)

    @property
    def failed(self) -> dict[str, tuple[float, str]]:
        """Champions that failed to load: version -> (monotonic time before which it is not
        tried again, why it failed)."""
        return self._follower.failed

    def _wanted(self) -> str | None:
        if self.pinned_version:
            return self.pinned_version
        if self._champion is None:
            from lookalike.registry import Registry  # the registry needs the database

            self._champion = Registry.open(self.settings).champion
        return self._champion()

    def wanted_version(self) -> str | None:
        """The version that should answer: the pinned one, else the champion (the loaded one
        while the registry cannot be read)."""
        return self._follower.wanted_version()

    def load(self, wait: bool = False) -> TrainedModel:
        """The model answering now (loaded on first use). When the champion moved, the new
        one is loaded beside the old in the background and swapped in once complete, so no
        request waits or fails meanwhile; ``wait``: load it here and now instead."""
        return self._load(wait)[0]

    def _load(self, wait: bool = False) -> tuple[TrainedModel, Backbones]:
        return self._follower.get(wait)

    def _build(
        self, version: str | None, previous: tuple[TrainedModel, Backbones] | None
    ) -> tuple[TrainedModel, Backbones]:
        model = load_model(self.settings, version)  # fetched when trained elsewhere
        model.index_gallery(self.settings.gallery_index_min_size)  # a large gallery: faiss
        if previous is not None and previous[1].key == model.info.backbone_key:
            return model, previous[1]  # same backbone, same settings: keep it warm
        return model, Backbones.build(model.info, self.settings, self.workers)

    def predict(
        self,
        photos: bytes | DecodedImage | list[bytes | DecodedImage],
        face_index: int | None = None,
        visit: Visit | None = None,
        names: list[str] | None = None,
        withheld: Collection[str] = (),
    ) -> Prediction:
        """Answer one photo, or a burst of frames of the same person (one look; embeddings
        averaged over the frames with a face good enough to judge). ``visit``: the same
        visitor's earlier looks, answered together with this one. ``names``: what to call
        each photo in error messages. ``withheld``: classes never to name or show (people
        who deleted their data since the model was trained, until a retrain replaces it).

        Frames are decoded one at a time and dropped once analysed (only the first one used
        is kept, in ``Prediction.image``), so a burst of large photos holds one at a time.
        Raises ``CannotJudge`` (``NoFaceFound`` among them) when no frame has a face that
        can be judged, saying why and how to retake the photo."""
        start = time.perf_counter()
        model, backbones = self._load()
        frames = photos if isinstance(photos, list) else [photos]
        if not frames:
            raise InvalidInput("Expected at least one photo; got none.", code="input.no_photo")
        if visit is not None and visit.backbone_key != model.info.backbone_key:
            visit = None  # the champion changed to another embedding space: start afresh
        vectors: list[np.ndarray] = []
        skipped: list[SkippedFrame] = []
        used: tuple[int, DecodedImage, Analysis, FaceQuality | None] | None = None
        refusals: list[CannotJudge] = []
        for i, frame in enumerate(frames):
            problem = None
            image = (
                frame
                if isinstance(frame, DecodedImage)
                else decode_image(frame, self.settings, name=names[i] if names else "image")
            )
            try:
                with backbones.use() as backbone:
                    analysis = backbone.analyze(image.rgb, face_index if len(frames) == 1 else None)
            except CannotJudge as exc:
                # Keep the error, not its traceback: that would hold the decoded frames.
                problem = exc.with_traceback(None)
            else:
                quality = None
                if analysis.crop is not None and analysis.face is not None:
                    quality = measure(analysis.crop, analysis.face)
                    problem = judge(quality, self.settings)
                    if problem is not None:
                        problem.details["faces"] = [f.to_dict() for f in analysis.faces]
                        problem.details["face_index"] = analysis.face_index
                if problem is None:
                    used = used or (i, image, analysis, quality)
                    vectors.append(analysis.vector)
            if problem is not None:
                skipped.append(SkippedFrame(i, problem.code, problem.message))
                refusals.append(problem)
            del image  # a large frame is freed before the next one is decoded
        if used is None:
            error = self._refusal(refusals, len(frames))
            refusals.clear()
            try:
                raise error
            finally:
                del error  # no cycle through this frame: freed now, not by a later GC
        look = l2_normalize(np.mean(vectors, axis=0))  # a burst's frames: one look
        looks, mean = 1, look
        if visit is not None:  # every look of the visit weighs the same
            looks = visit.looks + 1
            mean = (visit.vector * visit.looks + look) / looks
        return self._answer(model, mean, used, len(vectors), looks, skipped, start, withheld)

    @staticmethod
    def _refusal(refusals: list[CannotJudge], n_frames: int) -> CannotJudge:
        """The one error for a request in which no frame could be judged."""
        if n_frames == 1:
            return refusals[0]
        if all(isinstance(r, NoFaceFound) for r in refusals):
            return NoFaceFound(
                f"No face was found in any of the {n_frames} photos. Face the camera"
                " in good light and try again.",
                details={"faces_found": 0, "photos": n_frames},
            )
        # A face was seen but never well enough: say why, from the last frame that had one.
        seen = [r for r in refusals if not isinstance(r, NoFaceFound)][-1]
        return CannotJudge(
            f"None of the {n_frames} photos could be judged. {seen.message}",
            code=seen.code,
            details={**seen.details, "photos": n_frames},
        )

    def _answer(
        self,
        model: TrainedModel,
        mean: np.ndarray,
        used: tuple[int, DecodedImage, Analysis, FaceQuality | None],
        frames_used: int,
        looks: int,
        skipped: list[SkippedFrame],
        start: float,
        withheld: Collection[str] = (),
    ) -> Prediction:
        """The answer for ``mean``, the looks' mean embedding; ``used``: the first frame
        answered from (its index, the decoded frame, what was seen in it, its quality)."""
        frame_index, image, analysis, quality = used
        query = l2_normalize(mean)
        info = model.info
        labels = info.labels
        near = model.near(query)
        proba, match = near.proba, near.match
        resemblance = model.resemblance
        res_scores = resemblance.scores(query)[0]
        strengths = resemblance.strength(res_scores)
        hidden = np.array([label in withheld for label in labels], dtype=bool)
        if hidden.any():
            proba, match, res_scores = _without(hidden, proba, match, res_scores)
        order = [int(c) for c in np.argsort(-proba) if not hidden[c]]
        best = order[0]
        score = float(match[best])
        ranked = [int(c) for c in np.argsort(-res_scores) if not hidden[c]]
        if score >= info.threshold:  # someone in the gallery: this is them
            kind, names = SAME_PERSON, [labels[best]]
            ranked.remove(best)
            ranked.insert(0, best)
        else:  # everyone else: who they resemble; two names when noise would pick one
            kind = LOOKALIKE
            tie = len(ranked) > 1 and (
                res_scores[ranked[0]] - res_scores[ranked[1]] < resemblance.tie_gap(looks)
            )
            names = [labels[c] for c in ranked[: 2 if tie else 1]]
        store = DatasetStore(self.settings)

        def neighbour(i: int, similarity: float) -> Neighbour:
            return Neighbour(
                label=labels[int(model.gallery_labels[i])],
                similarity=similarity,
                sha256=str(model.gallery_hashes[i]),
                path=str(store.blob_path(str(model.gallery_hashes[i]), str(model.gallery_exts[i]))),
            )

        def closest_reference(c: int) -> Neighbour | None:
            found = model.closest_in_class(query, c)
            return neighbour(*found) if found else None

        shown_rows = [
            (int(row), float(sim))
            for row, sim in zip(near.rows, near.sims, strict=True)
            if np.isfinite(sim) and not hidden[int(model.gallery_labels[row])]
        ]

        shown = max(self.settings.lookalikes_shown, len(names))
        lookalikes = [
            LookalikeMatch(
                label=labels[c],
                score=float(res_scores[c]),
                strength=float(strengths[c]),
                reference=closest_reference(c),
            )
            for c in ranked[:shown]
        ]
        return Prediction(
            kind=kind,
            names=names,
            lookalikes=lookalikes,
            best_label=names[0],
            probability=float(proba[ranked[0]]),  # ranked[0] is the first name's class
            probabilities=[(labels[c], float(proba[c])) for c in order],
            match_score=score,
            threshold=info.threshold,
            nearest=[neighbour(row, sim) for row, sim in shown_rows[: self.settings.nearest_k]],
            faces=analysis.faces,
            face_index=analysis.face_index,
            frames_used=frames_used,
            looks=looks,
            model_version=info.version,
            latency_ms=(time.perf_counter() - start) * 1000,
            vector=query,
            visit_mean=mean,
            backbone_key=info.backbone_key,
            quality=quality,
            skipped=skipped,
            frame_index=frame_index,
            image=image,
        )


def _without(
    hidden: np.ndarray, proba: np.ndarray, match: np.ndarray, res_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scores with the ``hidden`` classes taken out: no probability (the others
    renormalised), no match, no resemblance (their reference photos are left out by the
    caller)."""
    if hidden.all():
        raise ModelUnavailable(
            "Every class of the serving model was deleted by its owner; a retrain replaces"
            " it. Try again in a few minutes.",
            code="model.classes_deleted",
        )
    kept = np.where(hidden, 0.0, proba)
    total = float(kept.sum())
    kept = kept / total if total > 0 else np.where(hidden, 0.0, 1.0 / int((~hidden).sum()))
    return kept, np.where(hidden, -np.inf, match), np.where(hidden, -np.inf, res_scores)
