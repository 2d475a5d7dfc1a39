"""How the chaos workload writes down an operation that raised: what the checker may assume."""

from __future__ import annotations

import pytest

from swarmnode.chaos.history import FAIL, INFO
from swarmnode.chaos.workload import classify_error
from swarmnode.errors import BadRequest, InternalError, Unavailable


@pytest.mark.parametrize(
    "message",
    [
        "consensus: not settled within 1s (no quorum?); a command may still take effect",
        "consensus: no leader (no quorum, or an election is running)",
        "no reply from swarmnode within 5s",
        "connection to swarmnode lost",
    ],
)
def test_a_write_answered_unavailable_may_have_taken_effect(message: str) -> None:
    # The one-hour soak recorded a cas answered "not settled" as failed, and a later read
    # saw its value: the checker, told it had no effect, called the history not linearizable.
    assert classify_error(Unavailable(message), writes=True) == INFO


def test_a_read_answered_unavailable_had_no_effect() -> None:
    assert classify_error(Unavailable("consensus: no leader to confirm a read"), False) == FAIL


def test_a_request_that_never_left_had_no_effect() -> None:
    assert classify_error(Unavailable("cannot reach swarmnode at /x.sock"), writes=True) == FAIL


def test_a_refusal_had_no_effect_and_an_internal_error_may_have() -> None:
    assert classify_error(BadRequest("no"), writes=True) == FAIL
    assert classify_error(InternalError("boom"), writes=True) == INFO
