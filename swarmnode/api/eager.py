"""Running a coroutine's first steps by hand, and handing the rest to a task.

Most requests (a get, a ping) finish without ever waiting, and for them a
task of their own plus a turn of the event loop cost more than the
operation. The servers therefore step a request's coroutine inside their
read callback; if it finishes there, its reply goes out at once, and if it has
to wait, `resume` lets a task await the rest as if the coroutine had started in
it (what Python 3.12's eager task factory does, which 3.11 lacks).
"""

from __future__ import annotations

import types
from collections.abc import Coroutine
from typing import Any


@types.coroutine
def resume(coroutine: Coroutine[Any, Any, Any], pending: Any) -> Any:
    """Await the rest of a coroutine that was stepped by hand and is waiting on `pending`.

    The task running this sees `pending` (the future the coroutine waits for)
    as if the coroutine had yielded it itself, and everything the task sends or
    throws in (a result, a cancellation) is passed on to the coroutine.
    """
    while True:
        try:
            sent = yield pending
        except BaseException as exc:
            try:
                pending = coroutine.throw(exc)
            except StopIteration as finished:
                return finished.value
        else:
            try:
                pending = coroutine.send(sent)
            except StopIteration as finished:
                return finished.value
