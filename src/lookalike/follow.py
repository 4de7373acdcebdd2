"""Following the registry's champion: one loaded model per process, swapped whole when the
champion moves, so promotions and rollbacks reach every serving process without a restart.

A :class:`ChampionFollower` asks ``wanted()`` which version should answer (one indexed read
of the registry, between requests) and keeps the value ``load(version, previous)`` built for
it. ``previous`` lets a loader reuse what did not change (``Predictor`` keeps a warm backbone).

* Nothing loaded yet, ``get(wait=True)``, or no version wanted: the version is loaded here
  and now, one caller at a time, and its errors reach the caller (no model yet, a damaged
  first model).
* The champion moved: the new version is loaded and swapped in whole (``background``: in a
  thread, beside the old one, which answers meanwhile; otherwise in the calling request). A
  version that fails to load (``LookalikeError``: missing or damaged artifact) is refused:
  the old one serves on, ``failed`` says why, and it is tried again after ``retry_seconds``.
* The registry cannot be read (the database is down): the loaded version serves on; with
  nothing loaded the error is raised (as ``unreadable(error)`` when given).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from lookalike.errors import LookalikeError

T = TypeVar("T")

log = logging.getLogger("lookalike.follow")


class ChampionFollower(Generic[T]):
    def __init__(
        self,
        wanted: Callable[[], str | None],
        load: Callable[[str | None, T | None], T],
        version_of: Callable[[T], str],
        *,
        background: bool = False,
        retry_seconds: float = 30.0,
        unreadable: Callable[[Exception], Exception] | None = None,
        what: str = "model",
        logger: logging.Logger | None = None,
    ) -> None:
        self._wanted = wanted
        self._load = load
        self._version_of = version_of
        self.background = background
        self.retry_seconds = retry_seconds
        self._unreadable = unreadable
        self.what = what  # in log lines: "model m0002", "name generator n0003"
        self.log = logger or log
        self._lock = threading.Lock()
        # One value, swapped in one assignment: a reader never sees half of a swap.
        self._current: T | None = None
        self._swapping: threading.Thread | None = None
        # version -> (monotonic time before which it is not tried again, why it failed)
        self.failed: dict[str, tuple[float, str]] = {}

    @property
    def current(self) -> T | None:
        """What answers now (None until the first load)."""
        return self._current

    def wanted_version(self) -> str | None:
        """The version that should answer; the loaded one while the registry is unreadable."""
        try:
            return self._wanted()
        except Exception as exc:  # the database is down: serve on with what is loaded
            current = self._current
            if current is None:
                if self._unreadable is None:
                    raise
                raise self._unreadable(exc) from exc
            version = self._version_of(current)
            self.log.warning("registry unreadable, %s %s serves on: %s", self.what, version, exc)
            return version

    def get(self, wait: bool = False) -> T:
        """The value answering now, after following the champion (see the module's notes)."""
        wanted = self.wanted_version()
        current = self._current
        if current is not None and self._version_of(current) == wanted:
            return current
        if current is None or wait or wanted is None:
            with self._lock:
                current = self._current
                if current is None or self._version_of(current) != wanted:
                    current = self._current = self._load(wanted, current)
                return current
        retry_at, _ = self.failed.get(wanted, (0.0, ""))
        if time.monotonic() >= retry_at:  # else it failed recently: keep serving the old one
            if self.background:
                self._swap_in_background(wanted)
            else:
                with self._lock:
                    now = self._current
                    if now is None or self._version_of(now) != wanted:
                        self._swap(wanted)
        now = self._current
        return now if now is not None else current

    def _swap_in_background(self, wanted: str) -> None:
        with self._lock:
            if self._swapping is not None and self._swapping.is_alive():
                return
            self._swapping = threading.Thread(
                target=self._swap_in_thread, args=(wanted,), name=f"load-{wanted}", daemon=True
            )
            self._swapping.start()

    def _swap_in_thread(self, wanted: str) -> None:
        built = self._try_load(wanted)
        if built is not None:
            with self._lock:
                self._install(wanted, built)

    def _swap(self, wanted: str) -> None:
        """Load ``wanted`` and swap it in (the caller holds the lock)."""
        built = self._try_load(wanted)
        if built is not None:
            self._install(wanted, built)

    def _try_load(self, wanted: str) -> T | None:
        try:
            return self._load(wanted, self._current)
        except LookalikeError as exc:  # damaged or missing artifact: the old one serves on
            self.failed[wanted] = (time.monotonic() + self.retry_seconds, exc.message)
            current = self._current
            self.log.error(
                "%s %s could not be loaded, %s keeps serving: %s",
                self.what,
                wanted,
                self._version_of(current) if current is not None else None,
                exc.message,
            )
            return None

    def _install(self, wanted: str, built: T) -> None:
        self._current = built
        self.failed.pop(wanted, None)
        self.log.info("now serving %s %s", self.what, wanted)
