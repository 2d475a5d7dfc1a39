"""Clock faults: what a node process reads from the wall clock, changed while it runs.

Each node runs with `wallclock.c` preloaded (compiled here with the system C
compiler) and a file of its own that says how far its wall clock is off and
how fast it runs. Only the wall clock changes: the monotonic clock, sleeps and
timers stay true, as when NTP steps or slews a host. Writing the file changes
what the process reads within 100 ms; nothing inside swarmnode knows.

Why not libfaketime (Debian's `libfaketime`): with its monotonic clock left
alone (FAKETIME_DONT_FAKE_MONOTONIC=1), version 0.9.10 rewrites absolute
CLOCK_MONOTONIC deadlines of clock_nanosleep with the fake wall-clock
offset, and Python's `time.sleep` fails with EINVAL; faking the monotonic
clock as well turns a clock step into a stall of the same length, which is
a different fault.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

SOURCE = Path(__file__).with_name("wallclock.c")
ENV_FILE = "SWARMNODE_CHAOS_CLOCK_FILE"


class ClockUnavailable(RuntimeError):
    """The clock shim could not be built (no C compiler)."""


def build_shim(out_dir: Path) -> Path:
    """Compile the preload library into `out_dir`; ClockUnavailable if there is no compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ClockUnavailable("no C compiler (cc or gcc) to build the clock shim")
    out = out_dir / "wallclock.so"
    done = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SOURCE), "-ldl", "-lpthread"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ClockUnavailable(f"building the clock shim failed: {done.stderr.strip()}")
    return out


class NodeClock:
    """The wall clock of one node process, as a file the shim reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        self.rate = 1.0
        self.reset()

    def _write(self, offset: float, rate: float, anchor: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{offset:.6f} {rate:.9f} {anchor:.6f}\n")
        tmp.replace(self.path)
        self.offset, self.rate = offset, rate

    def jump(self, seconds: float) -> None:
        """Step the clock by `seconds` (negative: backwards), at the current rate."""
        self._write(self.skew() + seconds, 1.0, time.time())

    def drift(self, rate: float) -> None:
        """From now on the clock runs at `rate` (1.01: gains 1%), from where it is now."""
        self._write(self.skew(), rate, time.time())

    def skew(self) -> float:
        """How far ahead of the real wall clock the node's clock is now, in seconds."""
        text = self.path.read_text().split() if self.path.exists() else []
        if len(text) != 3:
            return 0.0
        offset, rate, anchor = (float(x) for x in text)
        return offset + (time.time() - anchor) * (rate - 1.0)

    def reset(self) -> None:
        self._write(0.0, 1.0, 0.0)
