"""The ``/api/admin/evaluation`` answer (pydantic), as ``training.evaluation_views`` builds it:
photos by SHA-256 with their ``/api/admin/dataset/images/<sha256>`` URL, never by path."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class EvaluationPhoto(BaseModel):
    """One test photo and the model's answer to it."""

    sha256: str
    url: str = Field(description="The photo (admin only): /api/admin/dataset/images/<sha256>")
    source: str | None = Field(description="Where the photo was imported from")
    true: str = Field(description="Its class")
    predicted: str = Field(description="The model's best class")
    probability: float = Field(description="The probability of the predicted class")
    true_probability: float = Field(description="The probability of its own class")
    loss: float = Field(description="Cross-entropy of its own class (-log true_probability)")


class ConfusionCell(BaseModel):
    """A non-empty cell of the confusion matrix and the photos behind it."""

    true: str
    predicted: str
    count: int = Field(description="Photos in the cell (``photos`` lists the first ones)")
    photos: list[EvaluationPhoto] = Field(description="Most confident answers first")


class ClassMetrics(BaseModel):
    label: str
    precision: float
    recall: float
    f1: float
    support: int = Field(description="Test photos of the class")


class VersionEvaluation(BaseModel):
    """One model version on a frozen test set version."""

    version: str
    alias: str | None = Field(description="champion, challenger or null")
    test_version: int = Field(description="The test set version these photos are from")
    model_test_version: int = Field(description="The test set version the model froze")
    n: int = Field(description="Test photos answered")
    unanswered: int = Field(description="Test photos of its classes its backbone found no face in")
    accuracy: float | None
    macro_f1: float | None
    labels: list[str] = Field(description="The classes, in the confusion matrix's order")
    confusion: list[list[int]] = Field(description="Rows: true class; columns: predicted")
    per_class: list[ClassMetrics]
    cells: list[ConfusionCell]
    top_losses: list[EvaluationPhoto] = Field(description="Most confident mistakes first")


class PhotoDisagreement(BaseModel):
    """A test photo one version gets right and the other wrong."""

    sha256: str
    url: str
    source: str | None
    true: str
    predicted: str = Field(description="The version's answer")
    compare_predicted: str = Field(description="The compared version's answer")


class ClassRecall(BaseModel):
    label: str
    recall: float | None = Field(description="The version's; null: unknown class or no photos")
    compare_recall: float | None = Field(description="The compared version's")
    support: int


class EvaluationComparison(BaseModel):
    """The two versions on the same test photos."""

    test_version: int
    shared: int = Field(description="Test photos both versions answered")
    per_class: list[ClassRecall]
    only_version_right: list[PhotoDisagreement]
    only_compare_right: list[PhotoDisagreement]
    only_version_right_count: int
    only_compare_right_count: int


class VersionChoice(BaseModel):
    version: str
    alias: str | None
    created_at: datetime


class EvaluationPublic(BaseModel):
    """``version``'s evaluation views; with ``compare``, both side by side."""

    version: VersionEvaluation
    compare: VersionEvaluation | None
    comparison: EvaluationComparison | None
    versions: list[VersionChoice] = Field(description="Every face model version, newest first")
