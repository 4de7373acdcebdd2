"""One error hierarchy for every public entry point.

Each error carries an HTTP-ish status, a stable machine code and a human message that says
what was expected, what arrived and how to fix it. The CLI prints them without a traceback;
the web service (later) turns them into ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from typing import Any


class LookalikeError(Exception):
    """Base class: ``status`` + ``code`` + ``message`` + optional ``details``."""

    status: int = 400
    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidImage(LookalikeError):
    """The bytes are not an image we can safely decode (codes ``image.*``)."""

    code = "image.invalid"
    status = 422


class ImageTooLarge(InvalidImage):
    code = "image.too_large"
    status = 413


class CannotJudge(LookalikeError):
    """The third kind of answer: no face, or a face too small, dark or blurred to judge.

    Its message says why and how to retake the photo; ``details["answer"]`` is
    ``"cannot_judge"`` so every client can tell it from a bad request."""

    code = "face.cannot_judge"
    status = 422

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.details.setdefault("answer", "cannot_judge")


class NoFaceFound(CannotJudge):
    code = "face.not_found"


class InvalidInput(LookalikeError):
    """A request, argument or file that does not have the expected shape."""

    code = "input.invalid"
    status = 400


class NotFound(LookalikeError):
    code = "not_found"
    status = 404


class DatasetError(LookalikeError):
    """The dataset cannot be used as asked (too few images, no classes...)."""

    code = "dataset.invalid"
    status = 409


class ModelUnavailable(LookalikeError):
    """No usable model: none trained yet, or an artifact is missing or corrupt."""

    code = "model.unavailable"
    status = 503


class BackboneUnavailable(LookalikeError):
    """A backbone's weights or runtime are missing; the message says which package to install."""

    code = "backbone.unavailable"
    status = 503
