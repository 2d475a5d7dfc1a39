"""JSON logs: every key=value the code logs arrives as a field a collector can query."""

from __future__ import annotations

import io
import json
import logging

import pytest

from swarmnode.logs import JsonFormatter


@pytest.fixture
def emit():
    """Log one message through the JSON formatter and return the parsed line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("swarmnode.test_logs")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)

    def one(msg: str, *args: object, **kwargs: object) -> dict:
        stream.seek(0)
        stream.truncate()
        log.info(msg, *args, **kwargs)
        [line] = stream.getvalue().splitlines()
        return json.loads(line)

    return one


def test_event_pairs_become_fields(emit) -> None:
    doc = emit("event=vectors_ready namespaces=%d seconds=%.3f", 2, 0.25)
    assert doc["event"] == "vectors_ready" and doc["level"] == "info"
    assert doc["namespaces"] == "2" and doc["seconds"] == "0.250"
    assert doc["logger"] == "swarmnode.test_logs" and doc["ts"] > 0


def test_quoted_values_keep_their_spaces_and_quotes(emit) -> None:
    doc = emit("event=vectors_rebuild_all reason=%r why=%r", "no checkpoint", 'a "b" it\'s')
    assert doc["reason"] == "no checkpoint"
    assert doc["why"] == 'a "b" it\'s'


def test_a_dict_value_arrives_as_an_object(emit) -> None:
    doc = emit("gossip endpoint closed address=%s stats=%s", "127.0.0.1:7117", {"in": 3, "out": 4})
    assert doc["msg"] == "gossip endpoint closed"
    assert doc["stats"] == {"in": 3, "out": 4}
    assert doc["address"] == "127.0.0.1:7117"


def test_a_leading_word_names_the_event_and_plain_text_is_a_message(emit) -> None:
    doc = emit("api_listening path=%s", "/run/x.sock")
    assert doc["event"] == "api_listening" and doc["path"] == "/run/x.sock"
    assert "msg" not in doc
    plain = emit("node stopped cleanly")
    assert plain["msg"] == "node stopped cleanly" and "event" not in plain


def test_an_exception_travels_with_its_traceback(emit) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        doc = emit("event=op_failed op=%s", "Put", exc_info=True)
    assert doc["event"] == "op_failed" and doc["op"] == "Put"
    assert "RuntimeError: boom" in doc["exc"]
