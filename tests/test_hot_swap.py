"""Hot swap under load: the real server (``lookalike serve``, its own process) switches
champion between two requests, with no failed request, while 4 clients post real face
photos without pause.

The data: the web API tests' trained model (ORL s1..s6 x 6 photos, ``face`` backbone) as
``m0001``, plus ``m0002`` (gallery head) and three more versions trained on the same data.
The registry changes come from this process (``Registry``), as ``lookalike models
promote``/``rollback`` would make them; the server notices between requests. Phases:

1. ``m0001`` answers;
2. ``m0002`` is promoted: every client switches to it once, within seconds;
3. promoting ``m0003``, whose artifact was damaged after registration, or ``m0005``, whose
   directory was removed, is refused (``model.corrupt``): ``m0002`` goes on answering;
4. rollback: every client switches back to ``m0001`` once;
5. ``m0004`` is promoted and then damaged before the server got to load it: the server
   refuses it, ``m0001`` goes on answering, and ``/api/health`` says why;
6. rollback to ``m0001``.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.api import PEOPLE, api_settings, trained_home
from support.server import Server, running_server
from support.training import copy_home

from lookalike.artifacts import load_model, models_dir
from lookalike.config import Settings
from lookalike.errors import ModelUnavailable
from lookalike.registry import Registry
from lookalike.training.train import train

Orl = dict[str, list[Path]]

pytestmark = pytest.mark.slow

CLIENTS = 4
SWITCH_SECONDS = 5.0  # every client answered by the new champion within this


@dataclass
class Answer:
    at: float  # monotonic, when the answer was read
    status: int
    version: str | None
    label: str | None
    error: str = ""


@dataclass
class Load:
    """``CLIENTS`` threads posting photos to ``/api/predictions`` back to back."""

    url: str
    photos: list[tuple[str, bytes]]  # (person, bytes)
    answers: list[list[Answer]] = field(default_factory=lambda: [[] for _ in range(CLIENTS)])
    running: threading.Event = field(default_factory=threading.Event)  # cleared: pause
    stop: threading.Event = field(default_factory=threading.Event)
    idle: list[threading.Event] = field(
        default_factory=lambda: [threading.Event() for _ in range(CLIENTS)]
    )
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.running.set()
        for i in range(CLIENTS):
            thread = threading.Thread(target=self._client, args=(i,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _client(self, i: int) -> None:
        photos = itertools.islice(itertools.cycle(self.photos), i, None)
        with httpx.Client(timeout=60) as client:
            for person, data in photos:
                if self.stop.is_set():
                    return
                if not self.running.is_set():
                    self.idle[i].set()
                    self.running.wait()
                    continue
                self.idle[i].clear()
                files = {"photo": (f"{person}.pgm", data, "application/octet-stream")}
                try:
                    r = client.post(self.url + "/api/predictions", files=files)
                except httpx.TransportError as exc:
                    self.answers[i].append(Answer(time.monotonic(), 0, None, None, repr(exc)))
                    continue
                body: dict[str, Any] = r.json()
                self.answers[i].append(
                    Answer(
                        time.monotonic(),
                        r.status_code,
                        body.get("model_version"),
                        body.get("label"),
                        "" if r.status_code == 201 else r.text[:300],
                    )
                )

    def pause(self) -> None:
        """Stop sending; returns once no request is in flight."""
        self.running.clear()
        for event in self.idle:
            assert event.wait(60)

    def resume(self) -> None:
        self.running.set()

    def finish(self) -> None:
        self.stop.set()
        self.running.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def wait_all(self, version: str, since: float, timeout: float = 30.0) -> float:
        """Wait until every client's latest answer came from ``version`` (read after
        ``since``); returns the seconds from ``since`` to the last client's first such
        answer."""
        deadline = time.monotonic() + timeout
        while True:
            firsts = [
                next((a.at for a in answers if a.at > since and a.version == version), None)
                for answers in self.answers
            ]
            latest = [answers[-1].version if answers else None for answers in self.answers]
            if all(f is not None for f in firsts) and latest == [version] * CLIENTS:
                return max(f for f in firsts if f is not None) - since
            assert time.monotonic() < deadline, (version, latest, self.failures()[:3])
            time.sleep(0.05)

    def count(self) -> int:
        return sum(len(a) for a in self.answers)

    def failures(self) -> list[Answer]:
        return [a for answers in self.answers for a in answers if a.status != 201]


def runs(answers: list[Answer]) -> list[str | None]:
    """The sequence of versions with repeats collapsed: [m1, m1, m2, m2, m1] -> [m1, m2, m1]."""
    return [version for version, _ in itertools.groupby(a.version for a in answers)]


def damage(settings: Settings, version: str) -> None:
    npz = models_dir(Path(settings.home)) / version / "arrays.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))


@pytest.fixture
def served(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl, database_url: str
) -> Iterator[tuple[Settings, Server]]:
    """Five versions registered (``m0001`` the champion) and the real server serving them."""
    home = copy_home(trained_home(tmp_path_factory, orl), tmp_path / "home")
    settings = api_settings(home, database_url)  # m0001 the champion in this database
    with Registry(settings) as registry:
        assert registry.champion() == "m0001"
        for head in ("gallery", "logistic", "gallery", "logistic"):
            report = train(settings, head=head)
            registry.register_model(load_model(home, report.version).info, "test")
        assert [r.version for r in registry.versions()] == [f"m000{i}" for i in range(5, 0, -1)]
    logs = tmp_path / "logs"
    logs.mkdir()
    with running_server(settings, logs) as server:
        yield settings, server


def test_champion_switches_between_requests_under_load(
    served: tuple[Settings, Server], orl: Orl
) -> None:
    settings, server = served
    photos = [(p, orl[p][i].read_bytes()) for i in range(6, 10) for p in PEOPLE]  # held out
    load = Load(server.url, photos)
    load.start()
    try:
        start = time.monotonic()
        load.wait_all("m0001", start)
        with Registry(settings) as registry:
            # 2. A promotion: every client switches once, no request fails meanwhile.
            time.sleep(1.0)
            promoted_at = time.monotonic()
            assert registry.promote("m0002", reason="hot swap test", actor="test") == "m0001"
            to_new = load.wait_all("m0002", promoted_at)
            time.sleep(1.0)

            # 3. A damaged or missing artifact is refused by the registry; the champion stays.
            damage(settings, "m0003")
            shutil.rmtree(models_dir(Path(settings.home)) / "m0005")
            for broken in ("m0003", "m0005"):
                with pytest.raises(ModelUnavailable) as exc:
                    registry.promote(broken, reason="hot swap test", actor="test")
                assert exc.value.code == "model.corrupt"
                assert exc.value.details == {"artifact": f"models/{broken}"}
            assert registry.champion() == "m0002"
            time.sleep(1.0)

            # 4. Rollback: back to m0001, the same way.
            rolled_at = time.monotonic()
            assert registry.rollback(reason="hot swap test", actor="test") == ("m0002", "m0001")
            to_old = load.wait_all("m0001", rolled_at)
            time.sleep(1.0)
            health = server.health()
            assert (health["status"], health["model"], health["champion"]) == (
                "ok",
                "m0001",
                "m0001",
            ), health

            # 5. A champion damaged after its promotion, before the server loaded it: the
            # server refuses to serve it and m0001 answers on.
            load.pause()
            assert registry.promote("m0004", reason="hot swap test", actor="test") == "m0001"
            damage(settings, "m0004")
            damaged_at = time.monotonic()
            load.resume()
            time.sleep(2.0)
            health = server.health()
            assert health["status"] == "degraded", health
            assert (health["model"], health["champion"]) == ("m0001", "m0004"), health
            assert list(health["model_errors"]) == ["m0004"], health
            assert "damaged" in health["model_errors"]["m0004"], health
            load.wait_all("m0001", damaged_at)

            # 6. Rolled back to a whole version: served as before.
            assert registry.rollback(reason="hot swap test", actor="test") == ("m0004", "m0001")
            time.sleep(1.0)
            health = server.health()
            assert (health["model"], health["champion"]) == ("m0001", "m0001"), health
    finally:
        load.finish()

    assert load.failures() == []
    for answers in load.answers:
        # Each client: m0001, then m0002 once, then m0001 again; never a broken version.
        assert runs(answers) == ["m0001", "m0002", "m0001"], runs(answers)
        assert len(answers) >= 10
    assert {a.label for answers in load.answers for a in answers} <= set(PEOPLE)
    assert to_new < SWITCH_SECONDS and to_old < SWITCH_SECONDS, (to_new, to_old)
    assert load.count() >= 100, load.count()
    assert server.process.poll() is None
    print(
        f"{load.count()} requests by {CLIENTS} clients, 0 failed; every client answered by"
        f" the new champion {to_new:.2f} s after the promotion, {to_old:.2f} s after the"
        " rollback"
    )
