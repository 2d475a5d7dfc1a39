"""Structured logs for the daemon: one line per event, `key=value` text or JSON.

Modules log messages shaped `event=name key=value ...`; the JSON formatter
turns those pairs into fields, so operators can grep text logs or feed JSON
lines to a collector without the code choosing between them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_PAIR = re.compile(r"(\w+)=(\"[^\"]*\"|\S+)")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        pairs = dict(_PAIR.findall(msg))
        if pairs:
            doc.update({k: v.strip('"') for k, v in pairs.items()})
        else:
            doc["msg"] = msg
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
