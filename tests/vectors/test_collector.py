"""A batch pauses the cyclic collector, and only its own pause is undone."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from swarmnode.vectors.collector import collector_paused, paused_call


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


class _Made:
    """An object a batch makes and drops."""


def test_a_paused_call_frees_what_it_dropped_before_the_collector_resumes() -> None:
    made: list[weakref.ref[_Made]] = []
    at_resume: list[bool] = []
    callbacks_before = list(gc.callbacks)

    def work(n: int) -> int:
        assert not gc.isenabled()
        made.append(weakref.ref(_Made()))
        local = _Made()
        made.append(weakref.ref(local))
        return n * 2

    def on_collect(phase: str, info: dict) -> None:
        at_resume.append(all(ref() is None for ref in made))

    gc.callbacks.append(on_collect)
    try:
        assert paused_call(work, 21) == 42
        assert gc.isenabled()
        gc.collect(0)  # the first pass after the resume
    finally:
        gc.callbacks[:] = callbacks_before
    assert made and all(ref() is None for ref in made)
    assert at_resume and all(at_resume)


def test_a_paused_call_that_raises_resumes_the_collector() -> None:
    def work() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        paused_call(work)
    assert gc.isenabled()
