"""The ``lookalike`` command line. Happy paths run in-process (typer's CliRunner, fast) on the
``test`` backbone: only the plumbing is under test. Bad inputs run the installed console
script in a subprocess, so they go through ``lookalike.cli.main``: exit status 2, the error
code on screen, never a traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_clean_error, run
from typer.testing import CliRunner, Result

from lookalike import cli
from lookalike.artifacts import load_model
from lookalike.cli import app
from lookalike.config import Settings

Orl = dict[str, list[Path]]
PEOPLE = ["s1", "s2", "s3", "s4"]


@pytest.fixture(autouse=True)
def wide_console() -> Iterator[None]:
    """In-process runs print through the app's rich consoles: make them wide, so tables and
    long lines are not wrapped differently depending on the terminal pytest runs in."""
    saved = cli.console.width, cli.err.width
    cli.console.width = cli.err.width = 200
    yield
    cli.console.width, cli.err.width = saved


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Path:
    root = tmp_path_factory.mktemp("cli_source")
    for person in PEOPLE:
        (root / person).mkdir()
        for photo in orl[person][:6]:
            shutil.copy(photo, root / person / photo.name)
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, source: Path) -> tuple[Path, dict[str, Result]]:
    """Imported and trained once through the CLI; outputs kept for the tests to read."""
    home = tmp_path_factory.mktemp("cli") / "home"
    outputs = {
        "import": invoke("import", source, "--backbone", "test", "--home", home),
        "train": invoke("train", "--backbone", "test", "--home", home),
    }
    return home, outputs


def test_import_and_train_report(home: tuple[Path, dict[str, Result]], source: Path) -> None:
    path, outputs = home
    assert (
        "Imported 24 new image(s) in 4 class(es); 0 already present; 0 rejected"
        in outputs["import"].output
    )
    text = outputs["train"].output
    assert "Model m0001" in text and "test@1" in text
    assert "Test set: accuracy" in text
    assert (path / "models" / "m0001" / "model.json").is_file()
    # Importing again adds nothing.
    again = invoke("import", source, "--backbone", "test", "--home", path)
    assert "Imported 0 new image(s)" in again.output
    assert "24 already present" in again.output


def test_train_json(home: tuple[Path, dict[str, Result]], tmp_path: Path) -> None:
    path = shutil.copytree(home[0], tmp_path / "home")
    report = json.loads(
        invoke("train", "--json", "--head", "gallery", "--backbone", "test", "--home", path).stdout
    )
    assert report["version"] == "m0002"
    assert report["head"] == "gallery"
    assert report["embedded"] == 0 and report["cached"] == 24
    assert set(report["metrics"]) >= {"accuracy", "macro_f1", "per_class", "confusion"}


def gallery_photo(home: Path, photos: list[Path]) -> Path:
    """One of ``photos`` that the first model (m0001) keeps in its reference gallery."""
    hashes = set(load_model(home, "m0001").gallery_hashes.tolist())
    return next(p for p in photos if hashlib.sha256(p.read_bytes()).hexdigest() in hashes)


def test_predict_text_and_json(home: tuple[Path, dict[str, Result]], orl: Orl) -> None:
    path, _ = home
    photo = gallery_photo(path, orl["s2"])  # it is its own nearest neighbour
    text = invoke("predict", photo, "--home", path).output
    assert str(photo) in text
    assert f"{photo}: This is s2." in text  # the answer in one sentence, as on the page
    assert "s2  (very strong resemblance)" in text

    answer = json.loads(invoke("predict", photo, "--json", "--home", path).stdout)
    for key in ("answer", "label", "probabilities", "nearest", "face_box", "faces_found"):
        assert key in answer
    assert answer["answer"]["kind"] == "same_person" and answer["answer"]["names"] == ["s2"]
    assert answer["photo"] == str(photo)
    assert answer["best_label"] == "s2"
    assert answer["nearest"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert answer["faces_found"] == 0 and answer["face_box"] is None  # test backbone: no faces
    assert answer["model_version"] == "m0001"
    assert sorted(p["label"] for p in answer["probabilities"]) == PEOPLE
    assert sum(p["probability"] for p in answer["probabilities"]) == pytest.approx(1, abs=1e-3)

    several = json.loads(invoke("predict", photo, orl["s3"][0], "--json", "--home", path).stdout)
    assert [a["photo"] for a in several] == [str(photo), str(orl["s3"][0])]
    assert [a["answer"]["looks"] for a in several] == [1, 1]
    # --together: one visitor's photos, each answered with the ones before it.
    args = ("predict", photo, orl["s3"][0], orl["s3"][1], "--json", "--together", "--home", path)
    visit = json.loads(invoke(*args).stdout)
    assert [a["answer"]["looks"] for a in visit] == [1, 2, 3]
    text = invoke("predict", photo, orl["s3"][0], "--together", "--home", path).output
    assert "(from 2 photos)" in text


def test_evaluate(home: tuple[Path, dict[str, Result]], tmp_path: Path) -> None:
    path, _ = home
    text = invoke("evaluate", "--out", tmp_path / "report", "--home", path).output
    assert "Model m0001 on test set v1" in text
    assert (tmp_path / "report" / "metrics.json").is_file()
    assert (tmp_path / "report" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["n"] == 4 and f"n={metrics['n']}" in text


def test_check_and_classes(home: tuple[Path, dict[str, Result]], tmp_path: Path) -> None:
    path = shutil.copytree(home[0], tmp_path / "home")
    check = invoke("check", "--home", path).output
    assert "24 images" in check
    for person in PEOPLE:
        assert person in check
    listed = invoke("classes", "list", "--home", path).output
    assert listed.splitlines() == [f"{p}\t6" for p in PEOPLE]

    renamed = invoke("classes", "rename", "s1", "[Ada] Lovelace", "--home", path).output
    assert "Renamed 's1' to '[Ada] Lovelace' (6 images)" in renamed  # brackets survive
    listed = invoke("classes", "list", "--home", path).output
    assert listed.splitlines()[0] == "[Ada] Lovelace\t6"
    assert "s1\t6" not in listed

    empty = invoke("check", "--home", tmp_path / "empty").output
    assert "The dataset is empty" in empty


def test_backbones_and_settings() -> None:
    listed = invoke("backbones").output
    for name in ("face", "image", "test"):
        assert any(line.startswith(name) for line in listed.splitlines()), listed
    shown = invoke("settings").output
    for name in Settings.model_fields:
        assert f"LOOKALIKE_{name.upper()}" in shown


# --- bad inputs through the real entry point ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("missing.jpg", None, "image.unreadable"),
        ("notes.jpg", b"hello, this is text\n", "image.not_an_image"),
        ("empty.png", b"", "image.empty"),
    ],
)
def test_predict_bad_file(
    home: tuple[Path, dict[str, Result]],
    tmp_path: Path,
    name: str,
    content: bytes | None,
    code: str,
) -> None:
    photo = tmp_path / name
    if content is not None:
        photo.write_bytes(content)
    proc = run("predict", photo, "--home", home[0])
    assert_clean_error(proc, code)
    assert str(photo) in proc.stderr


def test_predict_bad_file_json(home: tuple[Path, dict[str, Result]], tmp_path: Path) -> None:
    photo = tmp_path / "notes.txt"
    photo.write_text("not a photo")
    proc = run("predict", photo, "--json", "--home", home[0])
    assert_clean_error(proc, "image.not_an_image")
    answer = json.loads(proc.stdout)
    assert answer["error"]["code"] == "image.not_an_image"
    assert answer["photo"] == str(photo)


def test_predict_before_training(tmp_path: Path, orl: Orl) -> None:
    proc = run("predict", orl["s1"][0], "--home", tmp_path / "home")
    assert_clean_error(proc, "model.none")
    assert "lookalike train" in proc.stderr


def test_import_missing_folder(tmp_path: Path) -> None:
    proc = run("import", tmp_path / "nowhere", "--backbone", "test", "--home", tmp_path / "h")
    assert_clean_error(proc, "import.not_found")


def test_train_unknown_head(home: tuple[Path, dict[str, Result]]) -> None:
    proc = run("train", "--head", "nope", "--home", home[0])
    assert_clean_error(proc, "train.unknown_head")
    assert "logistic" in proc.stderr


def test_bad_setting_in_environment(tmp_path: Path) -> None:
    proc = run("check", "--home", tmp_path, env={"LOOKALIKE_NEAREST_K": "many"})
    assert_clean_error(proc, "settings.invalid")
    assert "LOOKALIKE_NEAREST_K" in proc.stderr


def test_home_from_environment(home: tuple[Path, dict[str, Result]]) -> None:
    proc = run("classes", "list", env={"LOOKALIKE_HOME": str(home[0])})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{p}\t6" for p in PEOPLE]


def test_help_reads_as_sentences() -> None:
    """Every command's summary is a whole sentence, and flags show no "<bool>" type."""

    def cut(text: str) -> list[str]:  # summaries click shortened with "..."
        return [line for line in text.splitlines() if line.rstrip().endswith("...")]

    def help_of(*args: str) -> str:
        return CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"}).output

    text = help_of()
    assert "<bool>" not in text and cut(text) == ["Usage: root [OPTIONS] COMMAND [ARGS]..."]
    for sub in ("models", "admin", "names", "classes"):
        out = help_of(sub)
        assert "<bool>" not in out and len(cut(out)) == 1, out
    train = help_of("train")
    assert "--json   " in train and "<bool>" not in train
    assert "champion; later ones replace it" in " ".join(train.split())


def test_an_import_that_imports_nothing_fails_and_says_the_layout(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes(b"not really a photo")
    (flat / "b.png").write_bytes(b"nor this")
    junk = tmp_path / "junk" / "Alice"
    junk.mkdir(parents=True)
    (junk / "note.txt").write_text("not a photo")
    for source, what in (
        (empty, "no files"),
        (flat, "every file was refused"),
        (junk.parent, "every file was refused"),
    ):
        done = run("import", source, "--home", tmp_path / "home", "--backbone", "test")
        assert done.returncode == 2, (source, done.stdout, done.stderr)
        assert "[import.nothing_imported]" in done.stderr and what in done.stderr
        assert "one sub-folder per class" in done.stderr and "Traceback" not in done.stderr


def test_evaluate_without_any_model_says_how_to_make_one(tmp_path: Path) -> None:
    done = run("evaluate", "--version", "m0009", "--home", tmp_path / "home")
    assert done.returncode == 2
    assert "there is no model yet" in done.stderr and "Known: ." not in done.stderr
    assert "lookalike train" in done.stderr
