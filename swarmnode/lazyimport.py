"""Modules imported on first use, so an idle node does not carry them.

numpy alone adds about 18 MB to a node's resident memory (and hnswlib a
little more), yet a node without vectors or large Merkle trees never calls
them. A module that needs one writes

    if TYPE_CHECKING:
        import numpy as np
    else:
        np = lazy_module("numpy")

and the real import happens at the first attribute read (`np.zeros`). After
that the stand-in holds the real module's attributes, so reads cost what they
cost on the module itself. The import runs under a lock: the vector indexer's
thread and the event loop may both be first.
"""

from __future__ import annotations

import importlib
import threading
import types
from typing import Any

_lock = threading.Lock()


class _LazyModule(types.ModuleType):
    """Stands in for a module until an attribute is read, then copies its namespace."""

    def __getattr__(self, attr: str) -> Any:
        # Called only for attributes not (yet) in this stand-in's namespace.
        with _lock:
            real = importlib.import_module(self.__name__)
            self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def lazy_module(name: str) -> types.ModuleType:
    """A stand-in for module `name` that imports it at its first attribute read."""
    return _LazyModule(name)
