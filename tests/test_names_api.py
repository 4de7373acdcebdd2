"""``GET /api/names`` and the ``/names`` page: answers, validation errors in the one error
shape, 503 without a model, and the generator loaded lazily, once, and again only when the
registry's champion changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.api import SECRET, TestClient, assert_error, client_for
from support.names import names_home, pokemon, register_and_promote, trained_pokemon

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.names.store import load_names_info, save_names_model
from lookalike.registry import Registry


@pytest.fixture
def settings(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, database_url: str
) -> Settings:
    template, _, info = trained_pokemon(tmp_path_factory)
    home = names_home(template, tmp_path / "home")
    settings = Settings(
        home=home, database_url=database_url, secret_key=SECRET, rate_limit_per_minute=0
    )
    register_and_promote(settings, info)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings, raise_errors=False) as c:
        yield c


def test_names_are_new_unique_and_reproducible(client: TestClient) -> None:
    r = client.get("/api/names", params={"count": 7, "temperature": 0.8, "seed": 42})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 7 == len(body["data"]) == len(set(body["data"]))
    assert body["seed"] == 42 and body["model"] == "n0001" and body["corpus"] == "pokemon"
    assert not {n.lower() for n in body["data"]} & set(pokemon().names)
    assert all(len(n) <= body["max_length"] == 20 for n in body["data"])
    again = client.get("/api/names", params={"count": 7, "temperature": 0.8, "seed": 42})
    assert again.json() == body
    prefixed = client.get("/api/names", params={"prefix": "Mew", "max_length": 9}).json()
    assert all(n.startswith("Mew") and len(n) <= 9 for n in prefixed["data"])
    assert isinstance(prefixed["seed"], int)  # drawn, returned to repeat the answer


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"count": 0}, "names.count", None),
        ({"count": 16}, "names.count", None),
        ({"temperature": 0}, "names.temperature", None),
        ({"temperature": "nan"}, "names.temperature", None),
        ({"prefix": "a" * 200}, "names.prefix", None),
        ({"prefix": "Zoë"}, "names.prefix_characters", None),
        ({"max_length": 100}, "names.max_length", None),
        ({"count": "seven"}, "request.invalid", "query.count"),
        ({"seed": "x"}, "request.invalid", "query.seed"),
    ],
)
def test_validation_errors_have_the_one_shape(
    client: TestClient, params: dict[str, object], code: str, field: str | None
) -> None:
    details = assert_error(client.get("/api/names", params=params), 422, code)
    if field is not None:
        assert [f["field"] for f in details["fields"]] == [field]
    message = client.get("/api/names", params=params).json()["error"]["message"]
    assert len(message) > 20


def test_no_model_answers_503(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url, secret_key=SECRET)
    with client_for(settings, raise_errors=False) as client:
        r = client.get("/api/names")
        assert_error(r, 503, "names.no_model")
        assert "lookalike names train" in r.json()["error"]["message"]
        assert client.get("/names").status_code == 200  # the page itself works


def test_model_is_loaded_lazily_once_and_follows_the_champion(
    client: TestClient, settings: Settings
) -> None:
    app = client.app
    generator = app_state(app).names
    assert generator.loaded_version is None  # nothing loaded at start-up
    assert client.get("/api/names", params={"seed": 1}).status_code == 200
    first = generator.load()
    assert client.get("/api/names", params={"seed": 2}).status_code == 200
    assert generator.load() is first  # cached

    # A new version (same weights, another corpus name) is promoted: the next request uses it.
    info = load_names_info(Path(settings.home), "n0001")
    info2, _ = save_names_model(
        Path(settings.home),
        first.net,
        sorted(first.corpus),
        corpus={**info.corpus, "name": "pokemon-copy"},
        hyper_parameters=info.hyper_parameters,
        metrics=info.metrics,
        created_by="tests",
    )
    register_and_promote(settings, info2)
    body = client.get("/api/names", params={"seed": 1}).json()
    assert (body["model"], body["corpus"]) == ("n0002", "pokemon-copy")
    with Registry(settings) as registry:
        registry.rollback(reason="tests", actor="tests", kind="names")
    assert client.get("/api/names", params={"seed": 1}).json()["model"] == "n0001"


def test_damaged_champion_answers_503(client: TestClient, settings: Settings) -> None:
    weights = Path(settings.home) / "names" / "n0001" / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert_error(client.get("/api/names"), 503, "names.corrupt")


def test_the_names_page(client: TestClient) -> None:
    r = client.get("/names")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    assert 'id="count"' in html and 'max="15"' in html and 'id="temperature"' in html
    assert 'id="prefix"' in html and 'maxlength="19"' in html and 'id="quote-card"' in html
    for asset in ("/static/names.js", "/static/names.css"):
        assert client.get(asset).status_code == 200


def test_generation_is_rate_limited(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 2})
    with client_for(limited, raise_errors=False) as client:
        assert client.get("/api/names").status_code == 200
        assert client.get("/api/names", params={"count": 0}).status_code == 422
        assert_error(client.get("/api/names"), 429, "rate_limited")
        assert client.get("/names").status_code == 200  # the page itself is not limited
