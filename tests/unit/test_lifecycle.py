"""A serving worker's collector tuning: a second freeze once its first requests are served."""

from __future__ import annotations

import gc
import weakref

import pytest

from proxysite import lifecycle
from proxysite.lifecycle import ServingProcess


@pytest.fixture
def worker(monkeypatch, settings):
    settings.GC_FREEZE = True
    process = ServingProcess()
    process.started = True  # no flush timer, no signal handlers: only the counting is tested
    freezes: list[int] = []
    monkeypatch.setattr(lifecycle, "freeze_long_lived", lambda: freezes.append(process.served))
    process.freezes = freezes
    return process


def serve(process: ServingProcess, count: int) -> None:
    for _ in range(count):
        process.request_started()
        process.request_ended()


def test_it_freezes_again_once_the_warm_up_requests_are_served(worker):
    serve(worker, lifecycle.WARM_UP_REQUESTS - 1)
    assert worker.freezes == []
    serve(worker, 1)
    assert worker.freezes == [lifecycle.WARM_UP_REQUESTS]
    serve(worker, 1_000)
    assert worker.freezes == [lifecycle.WARM_UP_REQUESTS]  # once


def test_it_waits_for_a_moment_with_no_request_open(worker):
    worker.request_started()  # a long stream, open throughout
    serve(worker, lifecycle.WARM_UP_REQUESTS + 10)
    assert worker.freezes == []
    worker.request_ended()
    assert worker.freezes == [lifecycle.WARM_UP_REQUESTS + 11]


def test_under_unbroken_concurrency_it_freezes_anyway(worker):
    worker.request_started()
    serve(worker, lifecycle.WARM_UP_REQUESTS_AT_MOST)
    assert worker.freezes == [lifecycle.WARM_UP_REQUESTS_AT_MOST]


def test_it_does_not_freeze_when_freezing_is_off(worker, settings):
    settings.GC_FREEZE = False
    serve(worker, lifecycle.WARM_UP_REQUESTS)
    assert worker.freezes == []
    assert worker.warm


def test_freezing_collects_the_garbage_first():
    # Garbage frozen with the rest would never be collected.
    class Cycle:
        pass

    cycle = Cycle()
    cycle.me = cycle
    alive = weakref.ref(cycle)
    del cycle
    before = gc.get_freeze_count()
    try:
        lifecycle.freeze_long_lived()
        assert alive() is None
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
