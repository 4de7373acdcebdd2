"""How a serving Predictor shares backbones between concurrent photos (``Backbones``)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.inference import Backbones
from lookalike.vision.backbones import Backbone, TestBackbone


def make_pool(tmp_path: Path, workers: int, fail: bool = False) -> tuple[Backbones, list[Backbone]]:
    made: list[Backbone] = []

    def make_narrow() -> Backbone:
        if fail:
            raise RuntimeError("could not load a copy")
        backbone = TestBackbone(Settings(home=tmp_path))
        backbone.threads = 1
        made.append(backbone)
        return backbone

    return Backbones(TestBackbone(Settings(home=tmp_path)), workers, make_narrow), made


def test_a_lone_photo_gets_the_wide_backbone(tmp_path: Path) -> None:
    pool, made = make_pool(tmp_path, workers=2)
    for _ in range(3):
        with pool.use() as backbone:
            assert backbone is pool.wide
    assert made == []  # no copy is made while photos come one at a time


def test_concurrent_photos_get_one_thread_copies_up_to_the_cap(tmp_path: Path) -> None:
    pool, made = make_pool(tmp_path, workers=2)
    with pool.use() as first, pool.use() as second, pool.use() as third:
        assert first is pool.wide
        assert {second, third} == set(made) and len(made) == 2
        assert all(b.threads == 1 for b in made)
        got: list[Backbone] = []
        waiter = threading.Thread(target=lambda: got.append(pool.use().__enter__()))
        waiter.start()
        waiter.join(timeout=0.2)
        assert waiter.is_alive() and not got  # the cap: a fourth photo waits
    waiter.join(timeout=5)
    assert got and got[0] in (pool.wide, *made)
    assert len(made) == 2  # copies are reused, never more than ``workers``


def test_a_copy_that_fails_to_load_frees_its_slot(tmp_path: Path) -> None:
    pool, _ = make_pool(tmp_path, workers=2, fail=True)
    with pool.use() as first:
        assert first is pool.wide
        with pytest.raises(RuntimeError, match="could not load"), pool.use():
            pass
        assert pool._creating == 0
    with pool.use() as again:  # the pool still works afterwards
        assert again is pool.wide
