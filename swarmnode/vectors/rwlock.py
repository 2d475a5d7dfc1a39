"""A readers-writer lock: many searches of a namespace at once, or one change to it.

hnswlib allows concurrent `knn_query` calls, and concurrent `add_items`, but
not the two mixed, nor a resize with anything. Searches take the read side;
the indexer takes the write side for one short batch at a time. A waiting
writer holds back new readers, so a stream of searches cannot starve it.

Every search takes the read side, so it is a plain object with `__enter__` and
`__exit__` holding the condition's lock directly (the C lock's own `with`),
not a generator-based context manager going through `Condition`'s Python
methods: on a single vsearch that is several Python frames fewer, each run
with caches the graph walk has just emptied.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType


class Busy(Exception):
    """A non-blocking read found a writer holding or waiting for the lock."""


class ReadWriteLock:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._read_sides = (_ReadSide(self, False), _ReadSide(self, True))

    def read(self, blocking: bool = True) -> _ReadSide:
        """The read side, as a context manager; with `blocking=False` entering it raises `Busy`
        instead of waiting for a writer."""
        return self._read_sides[blocking]

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _ReadSide:
    """`ReadWriteLock.read`: stateless apart from its lock, so one per lock and mode is reused
    by every reader."""

    __slots__ = ("_blocking", "_lock")

    def __init__(self, lock: ReadWriteLock, blocking: bool) -> None:
        self._lock = lock
        self._blocking = blocking

    def __enter__(self) -> None:
        lock = self._lock
        with lock._mutex:
            while lock._writer or lock._writers_waiting:
                if not self._blocking:
                    raise Busy
                lock._cond.wait()
            lock._readers += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lock = self._lock
        with lock._mutex:
            lock._readers -= 1
            if not lock._readers:
                lock._cond.notify_all()
