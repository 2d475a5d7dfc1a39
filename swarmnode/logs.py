"""Structured logs for the daemon: one line per event, `key=value` text or JSON.

Modules log messages shaped `event=name key=value ...`; the JSON formatter
turns those pairs into fields, so operators can grep text logs or feed JSON
lines to a collector without the code choosing between them.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import sys
import time

_PAIR = re.compile(
    r"""(?:^|\s)(\w+)=("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^{}]*\}|\[[^\[\]]*\]|\S*)"""
)
"""key=value, the value bare, quoted as repr() or str() quote it, or a flat {...} or [...]."""


def parse_message(msg: str) -> dict[str, object]:
    """The fields of a log message: its key=value pairs, and what precedes them.

    A single leading word is the event's name (`api_listening path=...`),
    several are a message (`gossip endpoint started address=...`). Quoted and
    bracketed values are read back as the Python literals the code formatted
    (`reason='no checkpoint'`, `stats={...}`); anything else stays a string.
    """
    matches = list(_PAIR.finditer(msg))
    if not matches:
        return {"msg": msg}
    doc: dict[str, object] = {}
    head = msg[: matches[0].start()].strip()
    if head:
        doc["event" if " " not in head else "msg"] = head
    for m in matches:
        doc[m.group(1)] = _value(m.group(2))
    return doc


def _value(raw: str) -> object:
    if raw[:1] in ("'", '"', "{", "["):
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    return raw


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        doc.update(parse_message(record.getMessage()))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
        )


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("swarmnode")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
