"""Visit tokens: a visitor's earlier photos answered together with the next, kept nowhere.

The server keeps nothing of a visit. Each answer carries a signed token holding the mean of
the visit's face embeddings (float16), how many looks it averages, the backbone it was computed
with and when; the page sends it back with the next photo, and forgets it when the visitor
starts over or leaves. HMAC-SHA256 under ``settings.signing_key("visit")`` makes it
tamper-proof (a forged embedding could otherwise steer someone else's answer); it expires
``visit_minutes`` after its last photo. The embedding only ever goes back to the visitor it
was computed from.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

import numpy as np

from lookalike.config import Settings
from lookalike.errors import InvalidInput
from lookalike.inference import Visit

_PREFIX = "v1"
_HEADER = struct.Struct(">IH8s")  # issued (unix s), looks, backbone key digest
MAX_LOOKS = 1000
MAX_TOKEN_CHARS = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(settings: Settings, payload: str) -> str:
    key = settings.signing_key("visit")
    return _b64(hmac.new(key, f"{_PREFIX}.{payload}".encode(), "sha256").digest())


def _backbone_digest(backbone_key: str) -> bytes:
    return hashlib.sha256(backbone_key.encode()).digest()[:8]


def encode_visit(visit: Visit, settings: Settings, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    body = _HEADER.pack(issued, min(visit.looks, MAX_LOOKS), _backbone_digest(visit.backbone_key))
    body += np.asarray(visit.vector, dtype="<f2").tobytes()
    payload = _b64(body)
    mac = hmac.new(
        settings.signing_key("visit"), f"{_PREFIX}.{payload}".encode(), "sha256"
    ).digest()
    return f"{_PREFIX}.{payload}.{_b64(mac)}"


def decode_visit(
    token: str, settings: Settings, backbone_key: str, dim: int, now: float | None = None
) -> Visit | None:
    """The visit a token carries; None when it was made for another backbone (the champion
    changed: the visit starts afresh). Raises ``InvalidInput`` for a damaged or expired one."""

    def invalid(why: str, code: str = "visit.invalid") -> InvalidInput:
        return InvalidInput(
            f"The visit token is {why}. Start over: send the photo without 'visit'.",
            code=code,
            details={"field": "visit"},
        )

    parts = token.split(".")
    if len(token) > MAX_TOKEN_CHARS or len(parts) != 3 or parts[0] != _PREFIX:
        raise invalid("not one this service made")
    expected = hmac.new(
        settings.signing_key("visit"), f"{_PREFIX}.{parts[1]}".encode(), "sha256"
    ).digest()
    # Compare the text with the one canonical encoding (decoding would ignore spare bits).
    if not hmac.compare_digest(parts[2].encode("utf-8", "surrogatepass"), _b64(expected).encode()):
        raise invalid("not one this service made, or it was altered")
    body = _unb64(parts[1])
    if len(body) != _HEADER.size + 2 * dim:
        raise invalid("for another model")
    issued, looks, digest = _HEADER.unpack_from(body)
    if (time.time() if now is None else now) - issued > settings.visit_minutes * 60:
        raise invalid(f"older than {settings.visit_minutes} minutes", "visit.expired")
    if digest != _backbone_digest(backbone_key):
        return None
    vector = np.frombuffer(body, dtype="<f2", offset=_HEADER.size).astype(np.float32)
    # A mean of unit vectors: finite, no longer than 1 (float16 rounding aside).
    if looks < 1 or not np.isfinite(vector).all() or np.linalg.norm(vector) > 1.01:
        raise invalid("damaged")
    return Visit(vector=vector, looks=int(looks), backbone_key=backbone_key)
