"""The quote of the day: an external JSON quotes API, cached in the database, with built-in
public-domain quotes when there is no API or it fails.

* ``quote_url`` empty: the built-in quote of the day (chosen from the date) answers.
* Otherwise the cached quote answers while it is fresh (``quote_cache_seconds``, default
  24 h). The cache is the ``cache_entries`` table, so every worker process, and every app
  on the same database, shares one quote and the API is asked once a day.
* When the cache is stale, one request per process asks the API, with a hard limit of
  ``quote_timeout_seconds`` on the whole call; concurrent requests do not wait for it and
  get the last good quote (or a built-in one).
* A failure (timeout, HTTP error, an answer that is not JSON or lacks the text) is not
  cached for a day: the last good quote keeps answering, marked ``stale``, and the API is
  asked again after ``quote_retry_seconds``. Without any good quote yet, the built-in one
  answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from lookalike import __version__
from lookalike.config import Settings
from lookalike.db.models import CacheEntry
from lookalike.quotes_data import BUILTIN_QUOTES

log = logging.getLogger("lookalike.quotes")

CACHE_KEY = "quote-of-the-day"
MAX_QUOTE_CHARS = 1000
MAX_AUTHOR_CHARS = 200


@dataclass(frozen=True)
class Quote:
    text: str
    author: str | None
    source: str  # "api" | "builtin"
    fetched_at: datetime | None = None  # when the API answered it
    stale: bool = False  # the API failed since; this is the last good answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "author": self.author,
            "source": self.source,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "stale": self.stale,
        }


class QuoteUnavailable(Exception):
    """The quotes API did not give a usable quote (the reason is the message)."""


def builtin_quote(day: date) -> Quote:
    """The built-in quote of ``day``: the same all day, a different one the next."""
    text, author, _died, _work = BUILTIN_QUOTES[day.toordinal() % len(BUILTIN_QUOTES)]
    return Quote(text=text, author=author, source="builtin")


# --- reading the API --------------------------------------------------------------------------


def field_at(document: Any, path: str) -> Any:
    """The value at a dotted path: ``"quote.text"``, ``"0.q"`` (numbers index lists).
    Raises KeyError when it is not there."""
    value = document
    for part in path.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(value) <= index < len(value):
                raise KeyError(path)
            value = value[index]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


def _clean(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def parse_quote(payload: bytes, text_field: str, author_field: str) -> tuple[str, str | None]:
    """(text, author) from the API's JSON answer; QuoteUnavailable when it has no usable text.
    A missing or odd author gives None (an anonymous quote), not a failure."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise QuoteUnavailable(f"the answer is not JSON ({exc})") from exc
    try:
        text = _clean(field_at(document, text_field))
    except KeyError as exc:
        raise QuoteUnavailable(f"the answer has no {text_field!r}") from exc
    if not text:
        raise QuoteUnavailable(f"{text_field!r} in the answer is not a non-empty string")
    if len(text) > MAX_QUOTE_CHARS:
        raise QuoteUnavailable(f"the quote has {len(text)} characters (> {MAX_QUOTE_CHARS})")
    author: str | None = None
    if author_field:
        try:
            author = _clean(field_at(document, author_field))[:MAX_AUTHOR_CHARS] or None
        except KeyError:
            author = None
    return text, author


def _download(url: str, timeout: float, max_bytes: int) -> bytes:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": f"lookalike/{__version__}"}
    )
    # Only http(s) URLs get here: the setting is validated at start-up.
    with urllib.request.urlopen(request, timeout=timeout) as response:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise QuoteUnavailable(f"the answer has {declared} bytes (> {max_bytes})")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise QuoteUnavailable(f"no complete answer within {timeout} s")
            chunk = response.read1(16_384)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise QuoteUnavailable(f"the answer is larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def fetch_quote(
    url: str, *, text_field: str, author_field: str, timeout: float, max_bytes: int
) -> tuple[str, str | None]:
    """Ask the API; returns within ``timeout`` seconds whatever the server does (the call
    runs in a daemon thread that gives up by itself shortly after)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(_download(url, timeout, max_bytes))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name="quote-fetch", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise QuoteUnavailable(f"no answer within {timeout} s")
    result = outcome[0]
    if isinstance(result, QuoteUnavailable):
        raise result
    # The socket's own timeout can fire just before the join gives up: the same answer.
    reason = getattr(result, "reason", None)
    if isinstance(result, TimeoutError) or isinstance(reason, TimeoutError):
        raise QuoteUnavailable(f"no answer within {timeout} s")
    if isinstance(result, urllib.error.HTTPError):
        raise QuoteUnavailable(f"HTTP {result.code} {result.reason}")
    if isinstance(result, urllib.error.URLError):
        raise QuoteUnavailable(f"cannot reach it: {result.reason}")
    if isinstance(result, BaseException):
        raise QuoteUnavailable(f"{type(result).__name__}: {result}")
    return parse_quote(result, text_field, author_field)


# --- the cache --------------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


class QuoteOfTheDay:
    """The quote of the day for one app (see the module docstring). Thread-safe."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self._fetching = threading.Lock()
        s = settings
        # Cached quotes are only valid for the API and fields that produced them.
        self.config_key = hashlib.sha256(
            f"{s.quote_url}\n{s.quote_text_field}\n{s.quote_author_field}".encode()
        ).hexdigest()[:16]

    def get(self) -> Quote:
        now = self.clock()
        if not self.settings.quote_url:
            return builtin_quote(now.date())
        entry = self._read()
        value: dict[str, Any] = {}
        if entry is not None and entry.value.get("config") == self.config_key:
            value = entry.value
        good = self._good(value, stale=bool(value.get("error")))
        if value and entry is not None and entry.expires_at > now:
            return good or builtin_quote(now.date())
        # Missing or expired: ask the API, one request of this process at a time; the
        # others answer at once with what there is.
        if not self._fetching.acquire(blocking=False):
            return self._good(value, stale=True) or builtin_quote(now.date())
        try:
            return self._refresh(now, value)
        finally:
            self._fetching.release()

    def _refresh(self, now: datetime, last: dict[str, Any]) -> Quote:
        s = self.settings
        try:
            text, author = fetch_quote(
                s.quote_url,
                text_field=s.quote_text_field,
                author_field=s.quote_author_field,
                timeout=s.quote_timeout_seconds,
                max_bytes=s.quote_max_bytes,
            )
        except QuoteUnavailable as exc:
            log.warning("quotes API %s failed: %s", s.quote_url, exc)
            failed = {**last, "config": self.config_key, "error": str(exc)}
            failed.setdefault("quote", None)
            self._write(failed, now, now + timedelta(seconds=s.quote_retry_seconds))
            return self._good(failed, stale=True) or builtin_quote(now.date())
        value = {
            "config": self.config_key,
            "quote": {"text": text, "author": author},
            "fetched_at": now.isoformat(),
            "error": None,
        }
        self._write(value, now, now + timedelta(seconds=s.quote_cache_seconds))
        return Quote(text=text, author=author, source="api", fetched_at=now)

    @staticmethod
    def _good(value: dict[str, Any], *, stale: bool) -> Quote | None:
        quote = value.get("quote")
        if not isinstance(quote, dict) or not isinstance(quote.get("text"), str):
            return None
        fetched = value.get("fetched_at")
        return Quote(
            text=quote["text"],
            author=quote.get("author") if isinstance(quote.get("author"), str) else None,
            source="api",
            fetched_at=datetime.fromisoformat(fetched) if isinstance(fetched, str) else None,
            stale=stale,
        )

    def _read(self) -> CacheEntry | None:
        try:
            with self.sessions() as session:
                entry = session.get(CacheEntry, CACHE_KEY)
                if entry is not None and not isinstance(entry.value, dict):
                    return None
                return entry
        except SQLAlchemyError as exc:
            log.warning("reading the cached quote failed: %s", exc)
            return None

    def _write(self, value: dict[str, Any], now: datetime, expires: datetime) -> None:
        for _attempt in range(2):  # a second try when another process inserted meanwhile
            try:
                with self.sessions() as session, session.begin():
                    entry = session.get(CacheEntry, CACHE_KEY)
                    if entry is None:
                        session.add(
                            CacheEntry(
                                key=CACHE_KEY, value=value, stored_at=now, expires_at=expires
                            )
                        )
                    else:
                        entry.value = value
                        entry.stored_at = now
                        entry.expires_at = expires
                return
            except IntegrityError:
                continue
            except SQLAlchemyError as exc:
                log.warning("caching the quote failed: %s", exc)
                return
