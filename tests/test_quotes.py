"""The quote of the day: built-in public-domain quotes, a real quotes API on loopback
(answering, hanging, garbage, errors), the cache shared through the database by two apps,
and what is served while the API fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from support.api import SECRET, client_for
from support.quotes import QuoteServer

from lookalike.config import Settings
from lookalike.db import CacheEntry, init_db, make_engine, session_factory
from lookalike.quotes import (
    CACHE_KEY,
    MAX_QUOTE_CHARS,
    QuoteOfTheDay,
    QuoteUnavailable,
    builtin_quote,
    fetch_quote,
    field_at,
    parse_quote,
)
from lookalike.quotes_data import BUILTIN_QUOTES

TIMEOUT = 0.5


@pytest.fixture
def server() -> Iterator[QuoteServer]:
    with QuoteServer().running() as s:
        yield s


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    init_db(database_url)
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


def quote_settings(tmp_path: Path, server: QuoteServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "quote_url": server.url("/quote"),
        "quote_text_field": "quote.text",
        "quote_author_field": "quote.author",
        "quote_timeout_seconds": TIMEOUT,
        "secret_key": SECRET,
        "rate_limit_per_minute": 0,
    }
    values.update(overrides)
    return Settings(**values)


def expire(sessions: sessionmaker[Session]) -> None:
    """Make the cached quote stale, as if its time had passed."""
    with sessions() as session, session.begin():
        entry = session.get(CacheEntry, CACHE_KEY)
        assert entry is not None
        entry.expires_at = datetime.now(UTC) - timedelta(seconds=1)


def cached(sessions: sessionmaker[Session]) -> CacheEntry:
    with sessions() as session:
        entry = session.get(CacheEntry, CACHE_KEY)
        assert entry is not None
        return entry


# --- built-in quotes --------------------------------------------------------------------------


def test_builtin_quotes_are_public_domain_and_well_formed() -> None:
    assert len(BUILTIN_QUOTES) >= 30
    texts = [text for text, _, _, _ in BUILTIN_QUOTES]
    assert len(set(texts)) == len(texts)
    for text, author, died, work in BUILTIN_QUOTES:
        assert died < 1950, author
        assert text.strip() == text and 10 <= len(text) <= MAX_QUOTE_CHARS
        assert author.strip() and work.strip()


def test_the_builtin_quote_depends_only_on_the_date() -> None:
    day = date(2030, 5, 17)
    assert builtin_quote(day) == builtin_quote(day)
    assert builtin_quote(day).source == "builtin"
    days = [day + timedelta(days=i) for i in range(len(BUILTIN_QUOTES))]
    assert len({builtin_quote(d).text for d in days}) == len(BUILTIN_QUOTES)


def test_without_an_api_the_builtin_quote_answers(tmp_path: Path) -> None:
    def no_database() -> Session:
        raise AssertionError("the database is not needed without a quotes API")

    settings = Settings(home=tmp_path / "home")
    clock = datetime(2031, 1, 2, 12, tzinfo=UTC)
    quote = QuoteOfTheDay(settings, no_database, clock=lambda: clock).get()  # type: ignore[arg-type]
    assert quote == builtin_quote(clock.date())


# --- reading an API answer --------------------------------------------------------------------


def test_dotted_field_paths() -> None:
    doc = {"a": {"b": [1, {"c": "x"}]}}
    assert field_at(doc, "a.b.1.c") == "x"
    assert field_at(doc, "a.b.-1.c") == "x"
    assert field_at([{"q": "y"}], "0.q") == "y"
    for missing in ("a.z", "a.b.2", "a.b.x", "a.b.1.c.d", "0"):
        with pytest.raises(KeyError):
            field_at(doc, missing)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"quote": {"text": ""}}',
        b'{"quote": {"text": 42}}',
        b'{"quote": {"text": "   "}}',
        b'{"quote": "flat"}',
        b'{"quote": {"text": "' + b"x" * (MAX_QUOTE_CHARS + 1) + b'"}}',
    ],
)
def test_garbage_answers_are_refused(payload: bytes) -> None:
    with pytest.raises(QuoteUnavailable):
        parse_quote(payload, "quote.text", "quote.author")


def test_answers_are_cleaned_and_the_author_is_optional() -> None:
    doc = b'{"quote": {"text": "  To be,\\n or not  to be. ", "author": ["odd"]}}'
    assert parse_quote(doc, "quote.text", "quote.author") == ("To be, or not to be.", None)
    assert parse_quote(b'[{"q": "Hi there", "a": "Me"}]', "0.q", "0.a") == ("Hi there", "Me")
    assert parse_quote(b'[{"q": "Hi there", "a": "Me"}]', "0.q", "") == ("Hi there", None)


def test_fetching_from_a_real_server(server: QuoteServer) -> None:
    kw: dict[str, Any] = {"timeout": TIMEOUT, "max_bytes": 65_536}
    text, author = fetch_quote(server.url("/list"), text_field="0.q", author_field="0.a", **kw)
    assert (text, author) == (server.quote["text"], server.quote["author"])
    for path, why in [
        ("/garbage", "not JSON"),
        ("/error", "HTTP 500"),
        ("/empty", "has no"),
        ("/big", "bytes"),
        ("/hang", "within"),
    ]:
        started = time.monotonic()
        with pytest.raises(QuoteUnavailable, match=why):
            fetch_quote(server.url(path), text_field="quote.text", author_field="", **kw)
        assert time.monotonic() - started < TIMEOUT + 3.0, path  # cut off, never hangs
    closed = server.base.rsplit(":", 1)[0] + ":9"  # nothing listens on the discard port
    with pytest.raises(QuoteUnavailable, match="cannot reach"):
        fetch_quote(closed, text_field="text", author_field="", **kw)


# --- the cache --------------------------------------------------------------------------------


def test_two_apps_share_the_cached_quote_and_keep_it_through_failures(
    tmp_path: Path, server: QuoteServer, database_url: str
) -> None:
    settings = quote_settings(tmp_path, server, database_url=database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    first_text = server.quote["text"]
    with client_for(settings) as a, client_for(settings) as b:
        answer = a.get("/api/quote").json()
        assert answer["text"] == first_text and answer["author"] == "Francis Bacon"
        assert answer["source"] == "api" and not answer["stale"] and answer["fetched_at"]
        assert b.get("/api/quote").json() == answer  # the other app reads the database
        server.quote = {"text": "Tomorrow's quote.", "author": "Someone"}
        assert b.get("/api/quote").json() == answer  # cached: the API is not asked again
        assert server.hits["/quote"] == 1

        # The API breaks after the quote expired: the last good quote answers, marked stale,
        # and the failure is remembered only briefly, for both apps.
        server.mode = "garbage"
        expire(sessions)
        stale = b.get("/api/quote").json()
        assert stale["text"] == first_text and stale["stale"] and stale["source"] == "api"
        assert a.get("/api/quote").json()["text"] == first_text
        assert server.hits["/quote"] == 2
        entry = cached(sessions)
        assert entry.expires_at - datetime.now(UTC) <= timedelta(seconds=300 + 5)
        assert entry.value["error"] and entry.value["quote"]["text"] == first_text

        # A hanging API: the answer still comes within the timeout.
        server.mode = "hang"
        expire(sessions)
        started = time.monotonic()
        hung = a.get("/api/quote").json()
        assert time.monotonic() - started < TIMEOUT + 3.0  # the hanging call was cut off
        assert hung["text"] == first_text and hung["stale"]
        assert server.hits["/quote"] == 3

        # The API is back: the next refresh takes the new quote, for both apps.
        server.mode = "ok"
        expire(sessions)
        fresh = b.get("/api/quote").json()
        assert fresh["text"] == "Tomorrow's quote." and not fresh["stale"]
        assert a.get("/api/quote").json() == fresh
        assert server.hits["/quote"] == 4
        entry = cached(sessions)
        assert entry.expires_at - datetime.now(UTC) > timedelta(hours=23)
    engine.dispose()


def test_a_failing_api_without_a_good_quote_gives_the_builtin_one(
    tmp_path: Path, server: QuoteServer, sessions: sessionmaker[Session]
) -> None:
    now = [datetime(2031, 3, 4, 8, tzinfo=UTC)]
    server.mode = "error"
    settings = quote_settings(tmp_path, server, quote_retry_seconds=60)
    quotes = QuoteOfTheDay(settings, sessions, clock=lambda: now[0])
    assert quotes.get() == builtin_quote(now[0].date())
    assert cached(sessions).value["quote"] is None
    now[0] += timedelta(seconds=30)
    assert quotes.get() == builtin_quote(now[0].date())
    assert server.hits["/quote"] == 1  # within the retry delay: not asked again
    server.mode = "ok"
    now[0] += timedelta(seconds=31)
    fresh = quotes.get()
    assert fresh.source == "api" and fresh.text == server.quote["text"]
    assert server.hits["/quote"] == 2
    now[0] += timedelta(hours=23)
    assert quotes.get() == fresh and server.hits["/quote"] == 2  # cached for a day
    now[0] += timedelta(hours=1, seconds=1)
    quotes.get()
    assert server.hits["/quote"] == 3


def test_requests_do_not_wait_for_a_fetch_in_flight(
    tmp_path: Path, server: QuoteServer, sessions: sessionmaker[Session]
) -> None:
    server.mode = "hang"
    quotes = QuoteOfTheDay(quote_settings(tmp_path, server, quote_timeout_seconds=1.5), sessions)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(quotes.get()))
    worker.start()
    deadline = time.monotonic() + 5
    while server.hits["/quote"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    meanwhile = quotes.get()
    # Answered while the first fetch still hangs (it gives up only after its 1.5 s timeout).
    assert worker.is_alive()
    assert meanwhile.source == "builtin"
    worker.join(5)
    assert results and results[0].source == "builtin"
    assert server.hits["/quote"] == 1


def test_another_api_configuration_does_not_reuse_the_cache(
    tmp_path: Path, server: QuoteServer, sessions: sessionmaker[Session]
) -> None:
    QuoteOfTheDay(quote_settings(tmp_path, server), sessions).get()
    listed = quote_settings(tmp_path, server, quote_url=server.url("/list"), quote_text_field="0.q")
    other = QuoteOfTheDay(listed, sessions).get()
    assert other.source == "api" and other.author is None  # "quote.author" is not in a list
    assert (server.hits["/quote"], server.hits["/list"]) == (1, 1)


def test_api_without_a_quotes_url(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url, secret_key=SECRET)
    with client_for(settings) as client:
        answer = client.get("/api/quote").json()
    expected = builtin_quote(datetime.now(UTC).date())
    assert answer == {
        "text": expected.text,
        "author": expected.author,
        "source": "builtin",
        "fetched_at": None,
        "stale": False,
    }
