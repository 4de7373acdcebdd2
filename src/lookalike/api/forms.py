"""Reading a prediction request: multipart photo parts (bounded, counted before they are
read) with their options, or a JSON body naming a signed upload; and the OpenAPI description
of that body (FastAPI cannot infer a multipart list of files with options)."""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
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


async def read_multipart(
    request: Request, settings: Settings
) -> tuple[list[Photo], PredictOptions]:
    limit = settings.max_photos_per_request
    try:
        form = await request.form(max_files=limit, max_fields=16, max_part_size=64 * 1024)
    except StarletteHTTPException as exc:
        detail = str(exc.detail)
        if detail.startswith("Too many files"):
            raise ApiError(
                f"Too many photos: at most {limit} in one request (a webcam burst).",
                code="request.too_many_photos",
                status=413,
                details={"max_photos": limit},
            ) from None
        raise ApiError(
            f"The multipart body could not be read ({detail}). Send the photo as a"
            " multipart/form-data field named 'photo'.",
            code="request.bad_multipart",
            status=400,
        ) from None
    except ApiError:
        raise  # the body size limit
    except Exception as exc:  # a malformed body the parser choked on
        raise ApiError(
            "The multipart body could not be read. Send the photo as a multipart/form-data"
            " field named 'photo'.",
            code="request.bad_multipart",
            status=400,
            details={"reason": type(exc).__name__},
        ) from None
    try:
        photos: list[Photo] = []
        for i, part in enumerate(form.getlist("photo")):
            if not isinstance(part, UploadFile):
                raise _invalid("photo", "'photo' must be a file part, not a text field")
            label = f"photo {i}" + (f" ({part.filename[:80]})" if part.filename else "")
            if part.size is not None:  # the parser counted it: say the real size, read nothing
                check_image_bytes(part.size, settings, label)
            data = await part.read(settings.max_image_bytes + 1)  # bounded; decode refuses more
            photos.append(Photo(data, label))
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
