"""A batch pauses the cyclic collector, and only its own pause is undone."""

from __future__ import annotations

import gc
import threading

from swarmnode.vectors.collector import collector_paused


def test_the_collector_resumes_after_the_last_of_overlapping_batches() -> None:
    assert gc.isenabled()
    first_in, first_may_leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            first_may_leave.wait(10)
            seen.append(gc.isenabled())

    t = threading.Thread(target=first)
    t.start()
    assert first_in.wait(10)
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the first batch still runs
    first_may_leave.set()
    t.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_resumes_when_a_batch_fails() -> None:
    try:
        with collector_paused():
            raise ValueError("bad batch")
    except ValueError:
        pass
    assert gc.isenabled()


def test_batches_that_keep_overlapping_still_let_the_collector_run() -> None:
    collections: list[int] = []

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(record)
    try:
        with collector_paused(max_pause=0.0):
            with collector_paused(max_pause=0.0):
                pass
            assert collections == [2]  # the inner batch ended with the pause at its limit
            assert not gc.isenabled()
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(record)
