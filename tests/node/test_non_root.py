"""A node runs as an ordinary user on a fresh data directory, as systemd and containers run it.

Every other test runs as root, which opens any directory whatever its mode,
so they cannot see this: LMDB creates the store directory with the file
mode it is given (0600, no search bit), after which a non-root owner could
not open its own store ("cannot open store ... Permission denied"). Found
while running the container image as uid 10001; the store now creates the
directory with mode 0700 itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

NOBODY = 65534
setpriv = shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() != 0 or setpriv is None, reason="needs root and setpriv")
def test_a_node_started_as_an_ordinary_user_on_a_fresh_directory_serves() -> None:
    base = Path(tempfile.mkdtemp(prefix="snnr-", dir="/tmp"))
    os.chown(base, NOBODY, NOBODY)
    script = Path(sys.executable).parent / "swarmnode"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}
    try:
        proc = subprocess.Popen(
            [
                setpriv,
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                str(script),
                "run",
                "--data-dir",
                str(base / "d"),
                "--bind",
                "127.0.0.1:0",
                "--profile",
                "local",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=60)
        assert line.startswith("swarmnode ready:"), err[-2000:]
    finally:
        shutil.rmtree(base, ignore_errors=True)
