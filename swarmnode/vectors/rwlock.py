"""A readers-writer lock: many searches of a namespace at once, or one change to it.

hnswlib allows concurrent `knn_query` calls, and concurrent `add_items`, but
not the two mixed, nor a resize with anything. Searches take the read side;
the indexer takes the write side for one short batch at a time. A waiting
writer holds back new readers, so a stream of searches cannot starve it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Busy(Exception):
    """A non-blocking read found a writer holding or waiting for the lock."""


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self, blocking: bool = True) -> Iterator[None]:
        """The read side; with `blocking=False`, raises `Busy` instead of waiting for a writer."""
        with self._cond:
            while self._writer or self._writers_waiting:
                if not blocking:
                    raise Busy
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

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
