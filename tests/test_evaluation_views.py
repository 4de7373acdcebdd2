"""Evaluation views (``training.evaluation_views``) and ``lookalike evaluate --compare`` on the
``test`` backbone: a home with two versions trained on the same ORL photos (logistic and
gallery heads), so both share one frozen test set. 30 people with 6 photos each: enough for
the tiny backbone to make mistakes, and for the two heads to make different ones."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_clean_error, run
from support.training import class_folders
from typer.testing import CliRunner

from lookalike import cli
from lookalike.cli import app
from lookalike.config import Settings
from lookalike.data.store import DatasetStore
from lookalike.training.evaluation_views import evaluation_view, side_by_side

Orl = dict[str, list[Path]]
PEOPLE = [f"s{i}" for i in range(1, 31)]


@pytest.fixture(autouse=True)
def wide_console() -> Iterator[None]:
    saved = cli.console.width, cli.err.width
    cli.console.width = cli.err.width = 200
    yield
    cli.console.width, cli.err.width = saved


def invoke(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Path:
    """m0001 (logistic) and m0002 (gallery) on the same photos; read-only for the tests."""
    root = tmp_path_factory.mktemp("evaluation_views")
    source = class_folders(root / "source", {p: orl[p][:6] for p in PEOPLE})
    home = root / "home"
    invoke("import", source, "--backbone", "test", "--home", home)
    invoke("train", "--backbone", "test", "--home", home)
    invoke("train", "--backbone", "test", "--head", "gallery", "--home", home)
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    return shutil.copytree(template, tmp_path / "home")


def settings_for(home: Path) -> Settings:
    return Settings(home=home, backbone="test")


def test_cells_hold_the_photos_behind_the_confusion_matrix(home: Path) -> None:
    settings = settings_for(home)
    view = evaluation_view(settings, "m0001")
    labels, confusion = view["labels"], view["confusion"]
    assert labels == sorted(PEOPLE) and view["version"] == "m0001" and view["test_version"] == 1
    assert view["n"] == sum(map(sum, confusion)) == len(view["photos"]) > 0
    catalog = DatasetStore(settings).load().images
    for cell in view["cells"]:
        t, p = labels.index(cell["true"]), labels.index(cell["predicted"])
        assert cell["count"] == confusion[t][p] > 0
        assert len(cell["photos"]) == cell["count"]  # few photos: none left out
        for photo in cell["photos"]:
            assert catalog[photo["sha256"]].label == cell["true"]
            assert (photo["true"], photo["predicted"]) == (cell["true"], cell["predicted"])
    assert sum(c["count"] for c in view["cells"]) == view["n"]
    assert any(c["true"] != c["predicted"] for c in view["cells"])  # mistakes have cells too
    assert {c["label"] for c in view["per_class"]} == set(PEOPLE)
    for loss in view["top_losses"]:
        assert loss["predicted"] != loss["true"] and loss["loss"] > 0
    probabilities = [loss["probability"] for loss in view["top_losses"]]
    assert len(probabilities) == round((1 - view["accuracy"]) * view["n"]) > 0
    assert probabilities == sorted(probabilities, reverse=True)


def test_views_are_cached_until_the_test_photos_change(home: Path) -> None:
    settings = settings_for(home)
    first = evaluation_view(settings, "m0001")
    cache = settings.data_dir.evaluation_view("m0001", 1)
    cached = json.loads(cache.read_text())
    assert cached["key"] == first["key"]
    cached["unanswered"] = 99  # a marker: only a read of the cache returns it
    cache.write_text(json.dumps(cached))
    assert evaluation_view(settings, "m0001")["unanswered"] == 99

    # Relabel one test photo: a fresh view, computed again.
    catalog_path = settings.data_dir.catalog
    catalog = json.loads(catalog_path.read_text())
    sha = first["photos"][0]["sha256"]
    record = catalog["images"][sha]
    record["label"] = next(p for p in PEOPLE if p != record["label"])
    catalog_path.write_text(json.dumps(catalog))
    fresh = evaluation_view(settings, "m0001")
    assert fresh["key"] != first["key"] and fresh["unanswered"] == 0
    assert next(p for p in fresh["photos"] if p["sha256"] == sha)["true"] == record["label"]


def test_side_by_side_pairs_the_same_photos(home: Path) -> None:
    a, b, diff = side_by_side(settings_for(home), "m0002", "m0001")
    assert (a["version"], b["version"]) == ("m0002", "m0001")
    assert diff["shared"] == a["n"] == b["n"]
    right_a = {p["sha256"]: p["predicted"] == p["true"] for p in a["photos"]}
    right_b = {p["sha256"]: p["predicted"] == p["true"] for p in b["photos"]}
    expected = sorted(h for h in right_a if right_a[h] and not right_b[h])
    assert sorted(p["sha256"] for p in diff["only_version_right"]) == expected
    expected = sorted(h for h in right_a if right_b[h] and not right_a[h])
    assert sorted(p["sha256"] for p in diff["only_compare_right"]) == expected
    # Accuracy difference = the photos only one gets right, counted both ways.
    assert diff["only_version_right_count"] > 0 and diff["only_compare_right_count"] > 0
    gained = diff["only_version_right_count"] - diff["only_compare_right_count"]
    assert round((a["accuracy"] - b["accuracy"]) * a["n"]) == gained
    recalls = {r["label"]: (r["recall"], r["compare_recall"]) for r in diff["per_class"]}
    assert recalls == {
        c["label"]: (c["recall"], d["recall"])
        for c, d in zip(a["per_class"], b["per_class"], strict=True)
    }


def test_cli_prints_per_class_top_losses_and_side_by_side(home: Path) -> None:
    text = invoke("evaluate", "--version", "m0002", "--compare", "m0001", "--home", home)
    assert "Model m0002 on test set v1" in text  # the first line, as before
    assert "Per class" in text and "precision" in text and "recall" in text
    for person in PEOPLE:
        assert f"recall {person} " in text
    assert "m0002 beside m0001 on test set v1" in text
    assert "Right with m0002, wrong with m0001:" in text
    assert "Right with m0001, wrong with m0002:" in text
    a, b, _ = side_by_side(settings_for(home), "m0002", "m0001")
    assert (
        f"accuracy {a['accuracy']:.3f} {b['accuracy']:.3f}".split()
        == next(w for w in text.splitlines() if w.strip().startswith("accuracy")).split()
    )
    store = DatasetStore(settings_for(home))
    images = store.load().images
    assert a["top_losses"]
    for loss in a["top_losses"][:5]:  # each with the stored photo's path
        assert f"photo {store.path_of(images[loss['sha256']])}" in text
    for photo in diff_photos(home):
        assert photo in text


def diff_photos(home: Path) -> list[str]:
    """The sources of the photos only one of m0002 and m0001 gets right."""
    _, _, diff = side_by_side(settings_for(home), "m0002", "m0001")
    return [p["source"] for k in ("only_version_right", "only_compare_right") for p in diff[k]]


def test_cli_against_champion(home: Path) -> None:
    from lookalike.registry import Registry

    with Registry.open(settings_for(home)) as registry:
        champion, challenger = registry.champion(), registry.challenger()
    text = invoke("evaluate", "--against-champion", "--home", home)
    if challenger is None:
        pytest.fail(f"the fixture should leave a challenger beside champion {champion}")
    assert f"Model {challenger} on test set v1" in text
    assert f"{challenger} beside {champion}" in text


def test_cli_refuses_bad_comparisons(home: Path) -> None:
    both = run("evaluate", "--compare", "m0001", "--against-champion", "--home", home)
    assert_clean_error(both, "input.invalid")
    assert "give one" in both.stderr
    itself = run("evaluate", "--version", "m0001", "--compare", "m0001", "--home", home)
    assert_clean_error(itself, "input.invalid")
    unknown = run("evaluate", "--version", "m0001", "--compare", "m0042", "--home", home)
    assert_clean_error(unknown, "model.not_found")
    assert "m0042" in unknown.stderr
