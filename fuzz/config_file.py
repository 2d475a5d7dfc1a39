#!/usr/bin/env python3
"""Configuration files: TOML an operator wrote, read by `load_config`.

Must hold: `load_config` returns a `Config` or raises `ConfigError` (with a
message naming the setting), nothing else, whatever the file holds.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.config import Config, ConfigError, load_config

_DIR = Path(
    tempfile.mkdtemp(prefix="fuzz-config-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
)
_PATH = _DIR / "swarmnode.toml"


def check(data: bytes) -> None:
    _PATH.write_bytes(data)
    try:
        cfg = load_config(_PATH, env={})
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(cfg, Config)


if __name__ == "__main__":
    main(check)
