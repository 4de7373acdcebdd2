"""The name generator engine: corpora, the numpy GRU against torch, training against the
bigram baseline, generation (new, unique, within length, seeded), artifacts and the
registry's promotion gate."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from support.names import TEST_PARAMS, pokemon, trained_pokemon

from lookalike.config import Settings
from lookalike.errors import InvalidInput, ModelUnavailable, NotFound
from lookalike.names.corpus import load_corpus, normalize_name
from lookalike.names.generate import generate_names, in_style, validate_request
from lookalike.names.model import BOS, CharGRU, Vocabulary
from lookalike.names.service import NameGenerator, promotion_decision, train_names
from lookalike.names.store import (
    NamesModel,
    list_versions,
    load_names_info,
    load_names_model,
    names_dir,
)
from lookalike.names.train import HyperParameters, split_names
from lookalike.registry import Registry

LIMITS = {"max_names": 10_000, "max_chars": 64}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> NamesModel:
    home, _, info = trained_pokemon(tmp_path_factory)
    return load_names_model(home, info.version)


def request(model: NamesModel, **kwargs: object) -> object:
    values: dict[str, object] = {
        "count": 5,
        "temperature": 1.0,
        "prefix": None,
        "seed": 0,
        "max_length": None,
        "max_count": 15,
        "longest": 20,
    }
    values.update(kwargs)
    return validate_request(**values)  # type: ignore[arg-type]


# --- corpora ----------------------------------------------------------------------------------

CORPUS_CHECK = """
import sys
from lookalike.names.corpus import load_corpus
pokemon = load_corpus("pokemon", max_names=10_000, max_chars=64)
first = load_corpus("first-names", max_names=10_000, max_chars=64)
imported = sorted({"faker", "faker_pokemon", "names"} & set(sys.modules))
assert not imported, f"imported: {imported}"
print(len(pokemon), pokemon.names[0], pokemon.names[-1], len(first), first.names[0])
"""


def test_builtin_corpora_are_read_without_importing_their_packages() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CORPUS_CHECK], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:2] == ["1025", "bulbasaur"]
    assert int(out[3]) > 4000 and out[4] == "mary"


def test_file_corpus_is_normalised_and_hashed_like_a_builtin(tmp_path: Path) -> None:
    corpus = pokemon()
    path = tmp_path / "names.txt"
    lines = ["", "  " + corpus.names[0].upper() + "  ", *corpus.names, corpus.names[3].title()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from_file = load_corpus(path, **LIMITS)
    assert from_file.names == corpus.names
    assert from_file.sha256 == corpus.sha256
    assert from_file.name == "names.txt"
    assert normalize_name("  Mr  Mime\t") == "mr mime"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (None, "names.corpus_missing"),
        (b"\xff\xfe\x00bad", "names.corpus_invalid"),
        (b"a" * 100 + b"\n", "names.corpus_invalid"),
        (b"one\ntwo\nthree\n", "names.corpus_too_small"),
    ],
)
def test_bad_name_files_are_refused(tmp_path: Path, content: bytes | None, code: str) -> None:
    path = tmp_path / "names.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInput) as info:
        load_corpus(path, **LIMITS)
    assert info.value.code == code
    assert str(path) in info.value.message


def test_too_many_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"name{i}" for i in range(50)))
    with pytest.raises(InvalidInput) as info:
        load_corpus(path, max_names=30, max_chars=64)
    assert info.value.code == "names.corpus_too_large"


# --- the numpy forward pass is torch's --------------------------------------------------------


def test_numpy_gru_gives_torch_probabilities() -> None:
    torch = pytest.importorskip("torch")
    vocab = Vocabulary.of(["abra", "kadabra", "ho-oh", "porygon2"])
    torch.manual_seed(3)
    embedding = torch.nn.Embedding(vocab.size, 8)
    gru = torch.nn.GRU(8, 16, batch_first=True)
    out = torch.nn.Linear(16, vocab.size)
    with torch.no_grad():  # biases away from 0 so every term of the equations matters
        for p in (gru.bias_ih_l0, gru.bias_hh_l0, out.bias):
            p.uniform_(-1, 1)
    net = CharGRU(
        vocab,
        embedding=embedding.weight.detach().numpy(),
        w_ih=gru.weight_ih_l0.detach().numpy(),
        w_hh=gru.weight_hh_l0.detach().numpy(),
        b_ih=gru.bias_ih_l0.detach().numpy(),
        b_hh=gru.bias_hh_l0.detach().numpy(),
        w_out=out.weight.detach().numpy(),
        b_out=out.bias.detach().numpy(),
    )
    for text in ["", "a", "kad", "ho-o", "porygon2abra"]:
        tokens = torch.tensor([[BOS, *vocab.encode(text)]])
        with torch.no_grad():
            states, _ = gru(embedding(tokens))
            logits = out(states[0, -1]).double()
        logits[:2] = -math.inf  # padding and start are never predicted
        for temperature in (0.5, 1.0, 1.7):
            expected = torch.softmax(logits / temperature, dim=0).numpy()
            actual = net.next_probabilities(text, temperature)
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-7)
            assert actual.sum() == pytest.approx(1.0)


# --- training ---------------------------------------------------------------------------------


def bigram_perplexity(train: list[str], val: list[str], k: float) -> float:
    """An add-k character bigram model, written out here independently of the engine."""
    outcomes = [*sorted(set("".join(train + val))), "$"]  # "$": end of the name
    counts: Counter[tuple[str, str]] = Counter()
    context: Counter[str] = Counter()
    for name in train:
        for a, b in pairwise(["^", *name, "$"]):
            counts[a, b] += 1
            context[a] += 1
    nll = [
        -math.log((counts[a, b] + k) / (context[a] + k * len(outcomes)))
        for name in val
        for a, b in pairwise(["^", *name, "$"])
    ]
    return math.exp(sum(nll) / len(nll))


def test_training_beats_a_character_bigram_on_the_same_split(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _, result, _ = trained_pokemon(tmp_path_factory)
    corpus = pokemon()
    train, val = split_names(list(corpus.names), TEST_PARAMS.seed)
    assert (sorted(train), val) == (sorted(result.train_names), result.val_names)
    assert len(val) == round(0.1 * len(corpus)) and not set(train) & set(val)
    bigram = min(bigram_perplexity(train, val, k) for k in (0.01, 0.03, 0.1, 0.3, 1.0))
    gru = result.model.perplexity(val)  # the numpy forward pass, as served
    assert gru == pytest.approx(result.val_perplexity, rel=1e-4)
    assert result.bigram_perplexity == pytest.approx(bigram, rel=1e-6)
    print(f"validation perplexity: GRU {gru:.3f}, best add-k bigram {bigram:.3f}")
    assert gru < bigram
    assert result.best_epoch < result.epochs or result.stopped != "early stopping"
    assert result.epochs <= TEST_PARAMS.max_epochs


# --- generation -------------------------------------------------------------------------------


def test_generated_names_are_new_unique_and_within_length(trained: NamesModel) -> None:
    for temperature in (0.5, 1.0, 1.5):
        for seed in range(3):
            req = request(trained, count=15, temperature=temperature, seed=seed, max_length=9)
            result = generate_names(trained, req, max_tries=500)  # type: ignore[arg-type]
            names = [n.lower() for n in result.names]
            assert len(names) == 15, result
            assert len(set(names)) == 15
            assert not set(names) & trained.corpus
            assert all(1 <= len(n) <= 9 for n in names)
            assert all(n[0].isalnum() and n[0] == n[0].upper() for n in result.names)
            assert result.tries <= 500


def test_digits_and_punctuation_only_where_the_corpus_has_them(trained: NamesModel) -> None:
    corpus = frozenset({"porygon2", "pikachu", "mr. mime", "ho-oh"})
    assert in_style("xyzon2", corpus) and in_style("pika", corpus)
    assert in_style("mr. zap", corpus) and in_style("ka-oh", corpus)
    assert not in_style("woli2nda", corpus)  # a digit inside a name: never in the corpus
    assert not in_style("2pika", corpus) and not in_style("pi.ka", corpus)
    # The Pokemon generator, hot: no digit followed by a letter, as in "Woli2nda".
    names: list[str] = []
    for seed in range(6):
        req = request(trained, count=15, temperature=1.8, seed=seed)
        names += generate_names(trained, req, max_tries=600).names  # type: ignore[arg-type]
    assert len(names) >= 60
    assert not [n for n in names if any(a.isdigit() and b.isalpha() for a, b in pairwise(n))]
    assert all(in_style(n.lower(), trained.corpus) for n in names)


def test_generation_is_reproducible_with_a_seed(trained: NamesModel) -> None:
    def names(seed: int, **kwargs: object) -> list[str]:
        req = request(trained, count=10, seed=seed, **kwargs)
        return generate_names(trained, req, max_tries=500).names  # type: ignore[arg-type]

    assert names(7) == names(7)
    assert names(7) != names(8)
    assert names(7, prefix="Pi") == names(7, prefix="pi")
    assert all(n.startswith("Pi") for n in names(7, prefix="pi"))
    drawn = validate_request(
        count=1, temperature=1.0, prefix=None, seed=None, max_length=None, max_count=15, longest=20
    )
    assert 0 <= drawn.seed < 2**31  # drawn and returned, so the answer can be repeated


def test_low_temperature_repeats_itself_more(trained: NamesModel) -> None:
    rng = np.random.default_rng(0)
    cold = trained.net.sample(rng, 300, temperature=0.3, max_length=20)
    hot = trained.net.sample(rng, 300, temperature=1.8, max_length=20)
    assert len(set(cold)) < len(set(hot))


def test_tries_are_bounded(trained: NamesModel) -> None:
    req = request(trained, count=15, seed=1)
    result = generate_names(trained, req, max_tries=5)  # type: ignore[arg-type]
    assert result.tries == 5 and len(result.names) <= 5
    # A prefix that is already a complete name at a low temperature: mostly known names.
    req = request(trained, count=15, seed=1, prefix="pikach", temperature=0.2, max_length=8)
    result = generate_names(trained, req, max_tries=40)  # type: ignore[arg-type]
    assert result.tries == 40
    assert sum(result.rejected.values()) + len(result.names) == 40
    assert not {n.lower() for n in result.names} & trained.corpus


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"count": 0}, "names.count"),
        ({"count": 16}, "names.count"),
        ({"temperature": 0.0}, "names.temperature"),
        ({"temperature": 2.01}, "names.temperature"),
        ({"temperature": math.nan}, "names.temperature"),
        ({"prefix": "x" * 200}, "names.prefix"),
        ({"prefix": "abc", "max_length": 3}, "names.prefix"),
        ({"max_length": 1}, "names.max_length"),
        ({"max_length": 21}, "names.max_length"),
        ({"seed": -1}, "names.seed"),
    ],
)
def test_out_of_range_parameters_are_refused(
    trained: NamesModel, kwargs: dict[str, object], code: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        request(trained, **kwargs)
    assert info.value.code == code and info.value.status == 422
    assert "got" in info.value.message  # says what arrived
    assert info.value.message[0].isupper()  # a sentence


def test_prefix_outside_the_vocabulary_is_refused(trained: NamesModel) -> None:
    req = request(trained, prefix="Zoë!")
    with pytest.raises(InvalidInput) as info:
        generate_names(trained, req, max_tries=10)  # type: ignore[arg-type]
    assert info.value.code == "names.prefix_characters"
    assert info.value.details["unknown"] == ["ë", "!"]
    assert "abc" in info.value.details["allowed"]


# --- artifacts --------------------------------------------------------------------------------


def test_artifact_round_trip_and_damage(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, trained: NamesModel
) -> None:
    template, result, _ = trained_pokemon(tmp_path_factory)
    assert list_versions(template) == ["n0001"]
    saved = load_names_info(template, "n0001")
    assert saved.corpus["sha256"] == pokemon().sha256
    assert {"val_loss", "val_perplexity", "bigram_perplexity", "epochs", "train_seconds"} <= set(
        saved.metrics
    )
    assert saved.architecture["cell"] == "gru" and saved.vocab == trained.net.vocab.chars
    np.testing.assert_allclose(
        trained.net.next_probabilities("char"), result.model.next_probabilities("char"), rtol=1e-5
    )
    assert not list(names_dir(template).glob(".building-*"))

    import shutil

    home = tmp_path / "home"
    shutil.copytree(template, home)
    weights = names_dir(home) / "n0001" / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable) as damaged:
        load_names_model(home, "n0001")
    assert damaged.value.code == "names.corrupt" and "n0001" in damaged.value.message
    (names_dir(home) / "n0001" / "model.json").write_text("{not json")
    with pytest.raises(ModelUnavailable):
        load_names_info(home, "n0001")
    for bad in ("../n0001", "n1", "n9999", ".building-x"):
        with pytest.raises(NotFound):
            load_names_model(home, bad)


# --- registry and promotion gate --------------------------------------------------------------


def test_promotion_rules(trained: NamesModel) -> None:
    info = trained.info
    other_corpus = replace(info, version="n0000", corpus={**info.corpus, "sha256": "0" * 64})
    worse = replace(info, version="n0000", metrics={**info.metrics, "val_perplexity": 99.0})
    better = replace(info, version="n0000", metrics={**info.metrics, "val_perplexity": 1.0})
    assert promotion_decision(info, None)[0] is True
    assert promotion_decision(info, other_corpus) == (
        True,
        promotion_decision(info, other_corpus)[1],
    )
    assert "operator asked" in promotion_decision(info, other_corpus)[1]
    assert promotion_decision(info, worse)[0] is True
    promoted, reason = promotion_decision(info, better)
    assert not promoted and "not promoted" in reason


def test_train_register_gate_and_champion_following(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    quick = HyperParameters(max_epochs=1, seed=0)
    first = train_names(settings, "pokemon", params=quick, created_by="tests")
    assert (first.version, first.promoted, first.previous) == ("n0001", True, None)
    same = train_names(settings, "pokemon", params=quick, created_by="tests")
    assert same.version == "n0002" and not same.promoted  # same corpus, not better
    names_file = tmp_path / "mine.txt"
    names_file.write_text("\n".join(pokemon().names[:300]))
    other = train_names(settings, names_file, params=quick, created_by="tests")
    assert other.promoted and "operator asked" in other.reason and other.previous == "n0001"

    generator = NameGenerator(settings)
    try:
        assert generator.load().version == "n0003"
        assert generator.load() is generator.load()  # cached
        with Registry(settings) as registry:
            assert registry.champion("names") == "n0003"
            refused = registry.get("n0002")
            assert refused.decision == "refused" and refused.kind == "names"
            assert refused.metrics["corpus"] == "pokemon" and "val_perplexity" in refused.metrics
            reasons = [e.reason for e in registry.events("names", "n0002") if e.kind == "decision"]
            assert reasons and "not promoted" in reasons[0]
            registry.promote("n0001", reason="tests: back to pokemon", actor="tests")
        assert generator.load().version == "n0001"  # follows the champion
        assert generator.generate(count=3, seed=1).model == "n0001"
    finally:
        generator.close()


def test_no_model_yet(tmp_path: Path) -> None:
    generator = NameGenerator(Settings(home=tmp_path / "home"))
    try:
        with pytest.raises(ModelUnavailable) as info:
            generator.generate(count=3)
        assert info.value.code == "names.no_model" and info.value.status == 503
        assert "lookalike names train" in info.value.message
        with pytest.raises(InvalidInput):  # bad parameters are refused before any model
            generator.generate(count=0)
    finally:
        generator.close()


SAMPLING_THREADS = """
import numpy as np, threadpoolctl
from lookalike.names.model import CharGRU, Vocabulary

def blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

rng = np.random.default_rng(0)
vocab = Vocabulary.of(["anna", "bob"])
v, e, h = vocab.size, 8, 16
shapes = {"embedding": (v, e), "w_ih": (3 * h, e), "w_hh": (3 * h, h), "b_ih": (3 * h,),
          "b_hh": (3 * h,), "w_out": (v, h), "b_out": (v,)}
net = CharGRU.from_arrays(vocab, {k: rng.normal(0, 0.1, s) for k, s in shapes.items()})
before, seen = blas_threads(), []
step = net.step
def spying_step(tokens, hidden):
    if not seen:
        seen.append(blas_threads())
    return step(tokens, hidden)
net.step = spying_step
net.sample(rng, 4, temperature=1.0, max_length=10)
print(max(before), max(seen[0]), blas_threads() == before)
"""


def test_sampling_uses_one_blas_thread_and_restores_the_setting() -> None:
    # A process-wide setting: measured in a process of its own, where no other test's
    # threads (an app's, a consumer's) can change it meanwhile.
    pytest.importorskip("threadpoolctl")
    before, during, restored = subprocess.run(
        [sys.executable, "-c", SAMPLING_THREADS], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(during) == 1 and restored == "True"
    assert int(before) >= 1


BLAS_LOADED_LATER = """
import threadpoolctl
from lookalike.names.model import one_blas_thread

with one_blas_thread():  # the first request: only numpy's BLAS is loaded
    pass
import scipy.linalg, sklearn.linear_model  # noqa: E401,F401  (their own BLAS builds)
with one_blas_thread():
    inside = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
print(len(inside), max(inside))
"""


def test_a_blas_loaded_after_the_first_request_is_limited_too() -> None:
    pytest.importorskip("threadpoolctl")
    out = subprocess.run(
        [sys.executable, "-c", BLAS_LOADED_LATER], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) >= 1 and int(out[1]) == 1


def test_demo_trains_a_generator_only_when_none_answers(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.names import names_home, register_and_promote

    from lookalike.names import service

    def no_torch(*args: object, **kwargs: object) -> None:
        raise ModelUnavailable("needs torch", code="names.torch_missing")

    monkeypatch.setattr(service, "train_names", no_torch)
    fresh = Settings(home=tmp_path / "fresh")
    assert "names.torch_missing" in service.ensure_name_generator(fresh)  # the demo goes on

    template, _, info = trained_pokemon(tmp_path_factory)
    settings = Settings(home=names_home(template, tmp_path / "home"))
    register_and_promote(settings, info)
    assert service.ensure_name_generator(settings) == "Name generator n0001 already answers /names."
