"""Tell systemd how the node is doing (sd_notify), with no dependency.

Under a unit with `Type=notify`, systemd sets `$NOTIFY_SOCKET` to a datagram
socket (a path, or an abstract name written with a leading `@`) and waits for
`READY=1` before it counts the service as started, so `systemctl start`
returns, and units ordered after it start, only once the node serves. The
runtime sends:

- `READY=1` (with a `STATUS=` line) once the client socket listens and gossip
  has started: the moment the node prints its ready line;
- `RELOADING=1` when SIGHUP starts a key reload, then `READY=1` when it is done;
- `STOPPING=1` when shutdown begins;
- `STATUS=...` whenever there is something worth showing in `systemctl status`.

Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing and returns
False, so the runtime can call it unconditionally. A failure to send is
never fatal: the node serves either way.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify message (`KEY=VALUE` lines); True if it was sent."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def ready(status: str = "", env: Mapping[str, str] | None = None) -> bool:
    return notify(_with_status("READY=1", status), env)


def reloading(env: Mapping[str, str] | None = None) -> bool:
    """A reload begins; systemd 253+ wants the monotonic time with it (Type=notify-reload)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}", env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    return notify("STOPPING=1", env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    return notify(_with_status("", text), env)


def _with_status(first: str, status_text: str) -> str:
    lines = [first] if first else []
    if status_text:
        lines.append("STATUS=" + status_text.replace("\n", " "))
    return "\n".join(lines)
