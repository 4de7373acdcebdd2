"""Reading multipart requests: a prediction (photo parts, bounded and counted before they are
read, with their options, or a JSON body naming a signed upload) and a contribution (a
video or photos, a display name, consent); and the OpenAPI description of the prediction
body (FastAPI cannot infer a multipart list of files with options)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.api.errors import ApiError
from lookalike.api.schemas import PredictionFromUpload
from lookalike.config import Settings
from lookalike.services.predictions import Client, Photo, PredictOptions
from lookalike.vision.images import check_image_bytes

CLIENTS: tuple[Client, ...] = ("web", "api")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}

OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["photo"],
                    "properties": {
                        "photo": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One photo, or a burst of frames of one person.",
                        },
                        "face_index": {"type": "integer", "minimum": 0},
                        "consent": {"type": "boolean", "default": False},
                        "client": {"type": "string", "enum": list(CLIENTS), "default": "api"},
                        "visit": {
                            "type": "string",
                            "description": "The 'visit' token of this visitor's previous"
                            " answer: this photo is answered together with the earlier ones.",
                        },
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictionFromUpload"}},
        },
    }
}


def _invalid(field: str, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": kind}])


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters ("" when none)."""
    header = request.headers.get("content-type", "")
    message = Message()
    message["content-type"] = header
    return message.get_content_type().lower() if header else ""


async def _open_form(request: Request, max_files: int, what: str) -> FormData:
    """The multipart form, bounded: at most ``max_files`` files (``what`` names them in the
    error), 16 text fields of at most 64 KiB."""
    try:
        return await request.form(max_files=max_files, max_fields=16, max_part_size=64 * 1024)
    except StarletteHTTPException as exc:
        detail = str(exc.detail)
        if detail.startswith("Too many files"):
            raise ApiError(
                f"Too many files: at most {max_files} {what} in one request.",
                code="request.too_many_photos",
                status=413,
                details={"max_photos": max_files},
            ) from None
        raise ApiError(
            f"The multipart body could not be read ({detail}). Send multipart/form-data.",
            code="request.bad_multipart",
            status=400,
        ) from None
    except ApiError:
        raise  # the body size limit
    except Exception as exc:  # a malformed body the parser choked on
        raise ApiError(
            "The multipart body could not be read. Send multipart/form-data.",
            code="request.bad_multipart",
            status=400,
            details={"reason": type(exc).__name__},
        ) from None


async def _read_photos(form: FormData, settings: Settings, field: str = "photo") -> list[Photo]:
    """The form's ``field`` file parts, each read up to the image byte limit."""
    photos: list[Photo] = []
    for i, part in enumerate(form.getlist(field)):
        if not isinstance(part, UploadFile):
            raise _invalid(field, f"'{field}' must be a file part, not a text field")
        label = f"photo {i}" + (f" ({part.filename[:80]})" if part.filename else "")
        if part.size is not None:  # the parser counted it: say the real size, read nothing
            check_image_bytes(part.size, settings, label)
        data = await part.read(settings.max_image_bytes + 1)  # bounded; decode refuses more
        photos.append(Photo(data, label))
    return photos


async def read_multipart(
    request: Request, settings: Settings
) -> tuple[list[Photo], PredictOptions]:
    """A prediction request: ``photo`` part(s) and the options."""
    limit = settings.max_photos_per_request
    form = await _open_form(request, limit, "photos (a webcam burst)")
    try:
        photos = await _read_photos(form, settings)
        if not photos:
            raise _invalid("photo", "at least one photo is required (field 'photo')", "missing")
        if len(photos) > limit:
            raise ApiError(
                f"Too many photos: at most {limit} in one request (a webcam burst).",
                code="request.too_many_photos",
                status=413,
                details={"max_photos": limit, "photos": len(photos)},
            )
        options = PredictOptions(
            face_index=_form_int(form.get("face_index"), "face_index"),
            consent=_form_bool(form.get("consent"), "consent"),
            client=_form_client(form.get("client")),
            visit=_text(form.get("visit"), "visit") or None,
        )
    finally:
        await form.close()
    return photos, options


@dataclass(frozen=True)
class ContributionForm:
    display_name: str | None
    consent: bool
    video: Photo | None
    photos: list[Photo]


async def read_contribution(request: Request, settings: Settings) -> ContributionForm:
    """A contribution: one ``video`` part or ``photo`` parts, ``display_name``, ``consent``."""
    if media_type(request) != "multipart/form-data":
        raise ApiError(
            "Expected multipart/form-data with a 'video' file (or 'photo' files), a"
            " 'display_name' and 'consent'.",
            code="request.unsupported_media_type",
            status=415,
        )
    form = await _open_form(request, settings.contribution_max_photos + 1, "photos")
    try:
        video = None
        parts = form.getlist("video")
        if len(parts) > 1:
            raise _invalid("video", "send one video (field 'video')")
        if parts:
            part = parts[0]
            if not isinstance(part, UploadFile):
                raise _invalid("video", "'video' must be a file part, not a text field")
            if part.size is not None and part.size > settings.video_max_bytes:
                raise ApiError(
                    f"The video is {part.size} bytes; at most {settings.video_max_bytes} are"
                    " accepted. Record a shorter video (a few seconds: up to 10).",
                    code="video.too_large",
                    status=413,
                    details={"size": part.size, "max_bytes": settings.video_max_bytes},
                )
            video = Photo(await part.read(settings.video_max_bytes + 1), "the video")
        return ContributionForm(
            display_name=_text(form.get("display_name"), "display_name"),
            consent=_form_bool(form.get("consent"), "consent"),
            video=video,
            photos=await _read_photos(form, settings),
        )
    finally:
        await form.close()


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(field, f"'{field}' must be a text field, not a file")
    return value.strip()


def _form_int(value: Any, field: str) -> int | None:
    text = _text(value, field)
    if text is None or text == "" or text.lower() == "null":
        return None
    if not re.fullmatch(r"\d{1,4}", text):
        raise _invalid(field, f"'{field}' must be a whole number >= 0", "int_parsing")
    return int(text)


def _form_bool(value: Any, field: str) -> bool:
    text = _text(value, field)
    if text is None:
        return False
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _invalid(field, f"'{field}' must be true or false", "bool_parsing")


def _form_client(value: Any) -> Client:
    text = _text(value, "client")
    if text is None or text == "":
        return "api"
    if text == "web":
        return "web"
    if text == "api":
        return "api"
    raise _invalid("client", "'client' must be 'web' or 'api'", "literal_error")


async def read_json(request: Request) -> PredictionFromUpload:
    body = await request.body()
    try:
        return PredictionFromUpload.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]
        ) from None
