"""Crash safety of retraining, for real: a retrain process is killed with SIGKILL at each
stage while the real web server serves the champion from the same data dir and database.

The data: 12 ORL people x 8 photos imported with the real ``face`` backbone (the shared
template of ``support.training``), a champion made by ``retrain``, then new photos (a new
person and a ninth photo of four known ones) whose embeddings are dropped from the cache,
so that the retrain has new images to embed.

Each stage runs ``retrain()`` in a child Python process whose script wraps one function of
the engine (in the child only: the product code is not touched) to print ``STAGE <name>``
and sleep; the test waits for that line and sends SIGKILL. Stages, in the order a retrain
meets them: embedding new images, fitting a head, writing the artifact (a ``.building-``
directory before its rename), the artifact saved but not registered, the gate comparing
champion and challenger, and inside the promotion transaction (decision and champion
alias written to the database but not committed). After each kill: the registry still
names the old champion, ``lookalike models list --json`` (the real CLI) is consistent, and
the running server still answers predictions with the old champion. While a child holds
the retrain lock, a second retrain is refused (``RetrainRunning``; ``lookalike retrain``
exits 2 with one error line). At the end a normal retrain takes the lock, clears what the
killed ones left behind and decides; the server follows its decision without a restart.

On SQLite every stage is killed; on PostgreSQL the stages that have written to the
database (the gate at work, the promotion transaction).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from support.cli import SCRIPT
from support.server import Server, answer, child_env, running_server
from support.training import class_folders, copy_home, orl_face_template

from lookalike.artifacts import load_model, models_dir
from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.data.store import DatasetStore
from lookalike.db import make_engine
from lookalike.registry import CHALLENGER, CHAMPION, Registry
from lookalike.retrain import RetrainRunning, retrain

Orl = dict[str, list[Path]]

pytestmark = pytest.mark.slow

NEW_PERSON = "s14"
NEW_PHOTOS_OF = ["s1", "s2", "s3", "s4"]  # their 9th photo arrives after the champion
QUERY = ("s5", 9)  # a photo never imported: (person, index)
STAGES = {
    "sqlite": ["embed", "fit", "save", "register", "compare", "promote"],
    "postgresql": ["compare", "promote"],
}

# The child: arms the wrapper for its stage, imports what a retrain needs, says READY and
# waits for "go" on stdin (so the next child starts up while the test checks the last
# kill), then retrains.
CHILD = r"""
import os, sys, time
from pathlib import Path

home, database_url, stage = Path(sys.argv[1]), sys.argv[2], sys.argv[3]


def hold(name):
    print(f"STAGE {name} {os.getpid()}", flush=True)
    time.sleep(600)


# What a retrain imports lazily, imported now (before "go"): the stage comes sooner.
import scipy.stats
import sklearn.linear_model
import sklearn.metrics

import lookalike.retrain as retrain_module
import lookalike.training.compare as compare
from lookalike.config import Settings
from lookalike.registry import Registry
from lookalike.training.heads import HEADS
from lookalike.data.embed import Embedder

if stage == "embed":  # at the second new image: the first one is already in the cache
    real_embed = Embedder.embed_decoded
    seen = []

    def embed_decoded(self, image):
        seen.append(image.sha256)
        if len(seen) == 2:
            hold("embed")
        return real_embed(self, image)

    Embedder.embed_decoded = embed_decoded
elif stage == "fit":

    def fit(self, *args, **kwargs):
        hold("fit")

    for head_class in HEADS.values():
        head_class.fit = fit
elif stage == "save":  # arrays.npz and model.json written, the rename into place not done
    real_rename = os.rename

    def rename(src, dst, *args, **kwargs):
        if Path(src).name.startswith(".building-"):
            hold("save")
        return real_rename(src, dst, *args, **kwargs)

    os.rename = rename
elif stage == "register":  # the artifact is in models/, no registry row names it yet

    def register_model(self, *args, **kwargs):
        hold("register")

    Registry.register_model = register_model
elif stage == "compare":  # registered as the challenger; the gate is at work

    def predicted_labels(*args, **kwargs):
        hold("compare")

    compare.predicted_labels = predicted_labels
elif stage == "promote":
    # Killed inside the transaction that records the decision and moves the champion
    # alias: both are written (flushed) but not committed. The gate's verdict is forced to
    # "promoted" so that this transaction is reached whatever the gate says about the data.
    real_compare = retrain_module.compare_models

    def compare_models(*args, **kwargs):
        decision = real_compare(*args, **kwargs)
        decision.promoted = True
        return decision

    retrain_module.compare_models = compare_models
    real_promote_in = Registry._promote_in

    def promote_in(session, *args, **kwargs):
        real_promote_in(session, *args, **kwargs)
        session.flush()
        hold("promote")

    Registry._promote_in = staticmethod(promote_in)
elif stage != "none":
    raise SystemExit(f"unknown stage {stage}")

settings = Settings(home=home, backbone="face", database_url=database_url)
print("READY", flush=True)
sys.stdin.readline()
result = retrain_module.retrain(settings, strict=False, actor="crash test", trigger="manual")
print(f"DONE {result.version} promoted={result.promoted}", flush=True)
"""


class Child:
    """A retrain in a child process, armed to stop at ``stage`` ("none": runs through)."""

    def __init__(self, settings: Settings, stage: str, logs: Path) -> None:
        self.stage = stage
        self.stderr_path = logs / f"child-{stage}-{time.monotonic_ns()}.log"
        args = [str(settings.home), settings.effective_database_url, stage]
        with self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CHILD, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=child_env(),
                cwd=tempfile.gettempdir(),  # no stray .env
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.process.stdout.close()
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        """The first stdout line starting with ``prefix`` (fails if the child ends first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.kill()
                pytest.fail(f"{self.stage}: no {prefix!r} line in {timeout} s{self.log()}")
            if line is None:
                pytest.fail(
                    f"{self.stage}: the child exited ({self.process.wait()}) before"
                    f" {prefix!r}; stdout {self.output}{self.log()}"
                )
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def log(self) -> str:
        return "\n--- child stderr ---\n" + self.stderr_path.read_text()[-4000:]


def cli(settings: Settings, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real ``lookalike`` console script on ``settings``' data dir and database."""
    return subprocess.run(
        [str(SCRIPT), *map(str, args), "--home", str(settings.home)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(database_url=settings.effective_database_url),
        cwd=tempfile.gettempdir(),
        check=False,
    )


def uncache(settings: Settings, hashes: set[str]) -> None:
    """Forget the embeddings of ``hashes``: the next retrain has to embed them."""
    path = Path(settings.home) / "cache" / "embeddings.sqlite"
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            marks = ",".join("?" * len(hashes))
            conn.execute(f"DELETE FROM embeddings WHERE sha256 IN ({marks})", sorted(hashes))
    finally:
        conn.close()


def check_registry(settings: Settings, champion: str) -> dict[str, Any]:
    """The old champion, and ``lookalike models list --json`` consistent with the registry:
    every version once and whole (its artifact loads), aliases on listed versions, one
    decision per decided version, with the figures it was made on."""
    with Registry(settings) as registry:
        assert registry.champion() == champion
        events = registry.events()
        rows = {r.version: r for r in registry.versions()}
    proc = cli(settings, "models", "list", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed: dict[str, Any] = json.loads(proc.stdout)
    versions = [v["version"] for v in listed["data"]]
    assert len(versions) == len(set(versions)) == listed["count"], versions
    assert set(versions) == set(rows)
    assert listed["aliases"][CHAMPION] == champion
    assert set(listed["aliases"].values()) <= set(versions), listed["aliases"]
    for entry in listed["data"]:
        version = entry["version"]
        assert load_model(Path(settings.home), version).info.version == version
        tags = [a for a, v in listed["aliases"].items() if v == version]
        assert entry["alias"] in (tags or [None])
        decisions = [e for e in events if e.kind == "decision" and e.version == version]
        if entry["decision"] is None:
            assert not decisions, (version, decisions)
            continue
        assert len(decisions) == 1, (version, decisions)
        decision = decisions[0]
        assert entry["decision"] == ("promoted" if decision.promoted else "refused")
        assert decision.reason
        if decision.previous is not None:  # the first model had nothing to compare with
            assert decision.figures["champion"] == decision.previous, decision.figures
            assert decision.figures["challenger"] == version, decision.figures
            assert decision.figures["champion_accuracy"] is not None, decision.figures
    # The history names only listed versions; the champion got there by a promotion.
    assert {e.version for e in events} <= set(versions)
    assert champion in {e.version for e in events if e.kind in ("promote", "rollback")}
    return listed


def model_dirs(settings: Settings) -> list[str]:
    """Everything under models/ (versions, and leftovers such as ``.building-*``)."""
    return sorted(p.name for p in models_dir(Path(settings.home)).iterdir())


@contextmanager
def reader(settings: Settings) -> Iterator[Registry]:
    """The registry on an engine of its own, without ``init_db`` (which takes the SQLite
    write lock for a moment, and so waits while a retrain is inside a transaction)."""
    engine = make_engine(settings.effective_database_url)
    try:
        yield Registry(settings, engine)
    finally:
        engine.dispose()


def registered(settings: Settings) -> dict[str, str | None]:
    with reader(settings) as registry:
        return {r.version: r.decision for r in registry.versions()}


def assert_transaction_open(settings: Settings) -> None:
    """The child is inside an open write transaction on the registry's database."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), timeout=0.2)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                conn.execute("BEGIN IMMEDIATE")  # the write lock is the child's
        finally:
            conn.close()
        return
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as pg:
            open_ones = pg.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'idle in transaction' AND backend_xid IS NOT NULL"
                )
            ).scalar()
        assert open_ones, "no open write transaction on the database"
    finally:
        engine.dispose()


def at_stage(settings: Settings, stage: str, child: Child) -> None:
    """What the data dir and the registry look like while the child holds at ``stage``."""
    dirs = model_dirs(settings)
    versions = registered(settings)
    if stage in ("embed", "fit"):
        assert set(dirs) == set(versions), dirs
    elif stage == "save":
        building = [d for d in dirs if d.startswith(".building-")]
        assert len(building) == 1, dirs
        inside = models_dir(Path(settings.home)) / building[0]
        assert sorted(p.name for p in inside.iterdir()) == ["arrays.npz", "model.json"]
    elif stage == "register":
        assert [d for d in dirs if d not in versions] == ["m0002"], dirs
    elif stage == "compare":
        with reader(settings) as registry:
            assert registry.challenger() == max(versions)
        assert versions[max(versions)] is None
    elif stage == "promote":
        assert_transaction_open(settings)
    with reader(settings) as registry:  # readers see the old champion meanwhile
        assert registry.champion() == "m0001"


def refused_while_running(settings: Settings, child: Child) -> None:
    """A second retrain, in this process or through the CLI, is refused at once."""
    start = time.monotonic()
    with pytest.raises(RetrainRunning) as exc:
        retrain(settings, strict=False)
    assert time.monotonic() - start < 10  # refused, not queued behind the lock
    assert exc.value.code == "retrain.running" and exc.value.status == 409
    assert f"pid {child.pid}" in exc.value.details["holder"]
    proc = cli(settings, "retrain")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    # One error line (the CLI also leaves its unstarted progress bar on stderr: reported).
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "[retrain.running]" in errors[0], proc.stderr
    assert f"pid {child.pid}" in errors[0]


@pytest.fixture
def spawn() -> Iterator[list[Child]]:
    """Children started by a test; any still alive at its end (a failure) is killed."""
    children: list[Child] = []
    yield children
    for child in children:
        child.kill()


@pytest.fixture
def world(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl, database_url: str
) -> Iterator[tuple[Settings, set[str], Server]]:
    """The data dir with a champion and 10 new, unembedded photos; the server serving it."""
    template, _ = orl_face_template(tmp_path_factory, orl)
    home = copy_home(template, tmp_path / "home")
    settings = Settings(home=home, backbone="face", database_url=database_url)
    first = retrain(settings, strict=False)
    assert first.promoted and first.version == "m0001"
    before = set(DatasetStore(settings).load().images)
    new = {NEW_PERSON: orl[NEW_PERSON][:6]} | {p: [orl[p][8]] for p in NEW_PHOTOS_OF}
    assert import_images(class_folders(tmp_path / "new", new), settings).added == 10
    added = set(DatasetStore(settings).load().images) - before
    uncache(settings, added)  # the import embedded them: make the retrain do it
    logs = tmp_path / "logs"
    logs.mkdir()
    with running_server(settings, logs) as server:
        yield settings, added, server
    shutil.rmtree(home, ignore_errors=True)


def test_retrain_killed_at_every_stage(
    world: tuple[Settings, set[str], Server], spawn: list[Child], orl: Orl, database_url: str
) -> None:
    settings, _, server = world
    stages = STAGES[make_url(database_url).get_backend_name()]
    logs = server.log.parent

    def start(stage: str) -> Child:
        spawn.append(Child(settings, stage, logs))
        return spawn[-1]

    photo = orl[QUERY[0]][QUERY[1]]
    before = answer(server, photo)
    assert (before["model_version"], before["label"]) == ("m0001", QUERY[0])

    child = start(stages[0])
    for i, stage in enumerate(stages):
        child.wait_for("READY")
        child.go()
        assert child.wait_for("STAGE") == f"STAGE {stage} {child.pid}"
        at_stage(settings, stage, child)
        if stage == "compare":  # the child holds the retrain lock
            refused_while_running(settings, child)
        child.kill()
        assert child.process.returncode == -signal.SIGKILL
        # The next retrain process starts up while this kill is checked.
        child = start(stages[i + 1] if i + 1 < len(stages) else "none")

        check_registry(settings, "m0001")
        after = answer(server, photo)
        assert (after["model_version"], after["label"]) == ("m0001", QUERY[0]), stage
        health = server.health()
        assert (health["model"], health["champion"], health["model_errors"]) == (
            "m0001",
            "m0001",
            {},
        ), health

    # What the kills left in the registry: the two challengers registered before their kill,
    # never decided (the leftovers of earlier kills were removed by the next retrain).
    assert registered(settings) == {"m0001": "promoted", "m0002": None, "m0003": None}
    with Registry(settings) as registry:
        assert registry.aliases() == {CHAMPION: "m0001", CHALLENGER: "m0003"}

    # The lock is free again: a normal retrain (the last child, unarmed) runs to the end.
    child.wait_for("READY")
    child.go()
    done = child.wait_for("DONE", timeout=120)
    assert child.process.wait(timeout=30) == 0, child.log()
    assert done.split()[1] == "m0004", done
    versions = registered(settings)
    assert model_dirs(settings) == sorted(versions)  # no leftover of any kill
    assert versions["m0004"] in ("promoted", "refused")
    champion = "m0004" if versions["m0004"] == "promoted" else "m0001"
    assert check_registry(settings, champion)["count"] == 4
    # The server follows the decision without a restart, failing no request meanwhile.
    deadline = time.monotonic() + 30
    while (latest := answer(server, photo))["model_version"] != champion:
        assert time.monotonic() < deadline, latest["model_version"]
        time.sleep(0.1)
    assert latest["label"] == QUERY[0]
    assert server.process.poll() is None
