"""The vector index's readers-writer lock: readers together, a writer alone, waiting writers
first."""

from __future__ import annotations

import threading

import pytest

from swarmnode.vectors.rwlock import Busy, ReadWriteLock

WAIT = 10.0


def test_readers_share_the_lock_and_a_writer_waits_for_them_all() -> None:
    lock = ReadWriteLock()
    wrote = threading.Event()

    def writer() -> None:
        with lock.write():
            wrote.set()

    with lock.read(), lock.read():
        thread = threading.Thread(target=writer)
        thread.start()
        while not lock._writers_waiting:  # the writer has come and queued behind the readers
            thread.join(0.001)
        assert not wrote.is_set()
    assert wrote.wait(WAIT)
    thread.join(WAIT)


def test_a_waiting_writer_holds_back_new_readers_and_a_non_blocking_one_is_refused() -> None:
    lock = ReadWriteLock()
    waiting = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def reader() -> None:
        with lock.read():
            order.append("reader")

    with lock.read():
        w = threading.Thread(target=writer)
        w.start()
        while not lock._writers_waiting:  # the writer has queued behind this reader
            w.join(0.001)
        with pytest.raises(Busy), lock.read(blocking=False):
            pass
        r = threading.Thread(target=lambda: (waiting.set(), reader(), release.set()))
        r.start()
        assert waiting.wait(WAIT)
    assert release.wait(WAIT)
    w.join(WAIT)
    r.join(WAIT)
    assert order == ["writer", "reader"]


def test_a_reader_leaving_by_an_exception_releases_its_share() -> None:
    lock = ReadWriteLock()
    with pytest.raises(KeyError), lock.read():
        raise KeyError("boom")
    with lock.write():
        pass
    with lock.read(blocking=False):
        pass
