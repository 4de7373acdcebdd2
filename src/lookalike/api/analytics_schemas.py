"""The ``/api/analytics/...`` answers (pydantic), as ``lookalike.analytics.queries`` builds them.

Every answer starts with the filters it is for and the time zone (``AnalyticsHead``; see
``Query.head``). The models forbid undeclared keys: a key the queries add without declaring it
here is an error, not a field silently dropped from the dashboard's charts. Dates and times
are strings as the queries write them: local ISO datetimes with their offset, ``YYYY-MM-DD``
local days.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DATE: dict[str, Any] = {"format": "date"}
DATE_TIME: dict[str, Any] = {"format": "date-time"}
NULL_LABEL = "The class; null: no strong match (a lookalike answer)"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalyticsFiltersEcho(_Out):
    """The filters the answer is for (the defaults filled in)."""

    start: str = Field(
        description="First instant (local ISO datetime)", json_schema_extra=DATE_TIME
    )
    end: str = Field(description="End, exclusive (local ISO datetime)", json_schema_extra=DATE_TIME)
    model_version: str | None = Field(description="Only this model version's answers")
    label: str | None = Field(
        description="Only this class's answers; `__none__`: only no strong match; null: all"
    )


class AnalyticsHead(_Out):
    """What every analytics answer starts with."""

    filters: AnalyticsFiltersEcho
    timezone: str = Field(description="The configured time zone (IANA name) of the dates")


# --- classes -------------------------------------------------------------------------------


class ClassShare(_Out):
    label: str | None = Field(description=NULL_LABEL)
    count: int
    share: float | None = Field(description="Of `total`; null when it is 0")


class ModelClassCount(_Out):
    model_version: str
    label: str | None = Field(description=NULL_LABEL)
    count: int


class AnalyticsClasses(AnalyticsHead):
    """Predicted class distribution, overall and per model version."""

    total: int = Field(description="Predictions (a face was found)")
    data: list[ClassShare] = Field(description="Most frequent first")
    by_model: list[ModelClassCount] = Field(description="Per model version, most frequent first")


# --- accuracy ------------------------------------------------------------------------------


class AccuracyPoint(_Out):
    version: str
    created_at: str = Field(description="Local ISO datetime", json_schema_extra=DATE_TIME)
    accuracy: float | None = Field(description="On the held-out test photos")
    macro_f1: float | None
    decision: str | None = Field(description="The registry's promotion decision")
    champion: bool = Field(description="The current champion")
    was_champion: bool = Field(description="Promoted or rolled back to at some time")


class ChampionEvent(_Out):
    at: str = Field(description="Local ISO datetime", json_schema_extra=DATE_TIME)
    kind: Literal["promote", "rollback"]
    version: str = Field(description="The new champion")
    previous: str | None = Field(description="The champion before")
    reason: str
    actor: str


class AnalyticsAccuracy(AnalyticsHead):
    """Each model version's test accuracy and macro-F1, promotions and rollbacks (the dates
    filter ``created_at`` and ``at``; ``label`` is ignored)."""

    champion: str | None = Field(description="The current champion's version")
    data: list[AccuracyPoint] = Field(description="Oldest first")
    events: list[ChampionEvent] = Field(description="Promotions and rollbacks, oldest first")


# --- volume --------------------------------------------------------------------------------


class VolumeCount(_Out):
    start: str = Field(
        description="The bucket's first instant (local ISO datetime)", json_schema_extra=DATE_TIME
    )
    label: str | None = Field(description=NULL_LABEL)
    count: int


class AnalyticsVolume(AnalyticsHead):
    """Predictions per local bucket and class (empty buckets left out)."""

    bucket: Literal["hour", "day", "week", "month"]
    data: list[VolumeCount] = Field(description="Oldest first")


# --- heatmap -------------------------------------------------------------------------------


class AnalyticsHeatmap(AnalyticsHead):
    """Predictions per local weekday x hour."""

    weekdays: list[str] = Field(description='"Mon" .. "Sun"', min_length=7, max_length=7)
    hours: list[int] = Field(description="0 .. 23", min_length=24, max_length=24)
    data: list[list[int]] = Field(
        description="One row per weekday of 24 counts (one per local hour)",
        min_length=7,
        max_length=7,
    )


# --- latency -------------------------------------------------------------------------------


class LatencyFigures(_Out):
    """Milliseconds; the p-th percentile of n answers is the ceil(p*n)-th smallest (nearest
    rank, as PostgreSQL's percentile_disc); null without answers."""

    count: int
    p50: float | None
    p95: float | None


class LatencyDay(LatencyFigures):
    day: str = Field(description="Local day", json_schema_extra=DATE)


class LatencyClass(LatencyFigures):
    label: str | None = Field(description=NULL_LABEL)


class AnalyticsLatency(AnalyticsHead):
    """p50 / p95 answer time (ms, nearest rank), overall and per local day or per class."""

    by: Literal["day", "class"]
    overall: LatencyFigures
    data: list[LatencyDay | LatencyClass] = Field(
        description="Per day (oldest first) or per class (most answers first), as `by` says"
    )


# --- confidence ----------------------------------------------------------------------------


class ConfidenceBin(_Out):
    from_: float = Field(alias="from", description="Lower edge (included)")
    to: float = Field(description="Upper edge")
    count: int


class AnalyticsConfidence(AnalyticsHead):
    """Best-class probability histogram; no strong match / no face / several faces shares.
    ``total`` counts every logged request, those without a face included (the shares are of
    it; null when it is 0)."""

    total: int
    histogram: list[ConfidenceBin] = Field(description="10 bins of best-class probability")
    no_strong_match_share: float | None
    no_face_share: float | None
    several_faces_share: float | None


# --- feedback ------------------------------------------------------------------------------


class FeedbackCount(_Out):
    label: str | None = Field(description=NULL_LABEL)
    likes: int
    dislikes: int


class FeedbackConfusion(_Out):
    predicted: str | None = Field(description="The answer's best class")
    said: str = Field(description="The class the visitor named")
    count: int


class AnalyticsFeedback(AnalyticsHead):
    """Likes and dislikes per class; "I look more like ..." against the best class."""

    data: list[FeedbackCount]
    confusion: list[FeedbackConfusion] = Field(description="Most frequent first")


# --- drift ---------------------------------------------------------------------------------


class DriftReference(BaseModel):
    """What the model's answers to its held-out test photos looked like: the values of the
    probability and match score at the ``quantiles`` levels (other keys kept as stored)."""

    model_config = ConfigDict(extra="allow")

    quantiles: list[float]
    probability: list[float]
    match_score: list[float]


class DriftDay(_Out):
    day: str = Field(description="Local day", json_schema_extra=DATE)
    n: int = Field(description="Predictions")
    mean_match_score: float
    mean_probability: float
    score: float | None = Field(
        description="The larger KS distance of the two; null without a reference"
    )
    ks_match_score: float | None = Field(description="KS distance of the match scores")
    ks_probability: float | None = Field(description="KS distance of the probabilities")
    over: bool = Field(description="`score` above `threshold`: a retrain is worth considering")


class AnalyticsDrift(AnalyticsHead):
    """Daily distance of the confidences from the model's held-out reference. Embeddings are
    never logged (privacy), so drift is measured on the logged confidences: ``score`` is the
    larger Kolmogorov-Smirnov distance (on the histogram grid) of the day's match scores and
    best-class probabilities from the deciles the filtered model (default: the champion)
    showed on its held-out test photos; ``over``: score above the ``drift_threshold``
    setting, a retrain is worth considering."""

    threshold: float = Field(description="The drift_threshold setting")
    reference_version: str | None = Field(description="The model measured against")
    reference: DriftReference | None = Field(description="Null: that model has none")
    data: list[DriftDay] = Field(description="Oldest first")
