"""Unix sockets for the node's client-facing servers (msgpack API and RESP).

Socket safety: the socket's directory is created with mode 0700 when missing;
an existing one must belong to this user and not be writable by group or
others, or the server refuses to start (`UnsafeSocketDirectory`). The socket
is bound and set to 0600 before it listens. A lock file beside the socket
(`<socket>.lock`, held with flock for the server's lifetime and released by the
kernel when the process dies) says whether a server owns the path: if it is
held, or something still accepts connections on the path, start fails with
`SocketInUse`; otherwise a socket file left there is stale and is replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import stat
from pathlib import Path

log = logging.getLogger("swarmnode.api")

SUN_PATH_MAX = 107
"""Bytes a Unix socket address can hold."""
_PROBE_TIMEOUT = 1.0


class ApiSocketError(RuntimeError):
    """The server cannot use its socket path."""


class SocketInUse(ApiSocketError):
    """Another server owns or answers on the socket path."""


class UnsafeSocketDirectory(ApiSocketError):
    """The socket's directory could let another user replace or hijack the socket."""


def prepare_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(directory, 0o700)  # exactly 0700 whatever the umask took away
        return
    info = os.stat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeSocketDirectory(f"{directory} exists and is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeSocketDirectory(
            f"socket directory {directory} belongs to uid {info.st_uid}, not to this user "
            f"(uid {os.geteuid()}); use a directory of your own"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeSocketDirectory(
            f"socket directory {directory} is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}), so another user could replace the socket; "
            f"run `chmod 700 {directory}` or choose another socket path"
        )


def acquire_lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SocketInUse(
            f"another swarmnode server is running on {path} (lock {lock_path} is held)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def bind_unix(path: Path, backlog: int) -> socket.socket:
    """Bind owner-only, replacing a stale socket file but never a live one or a non-socket."""
    remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, 0o600)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def remove_stale_socket(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ApiSocketError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("api_stale_socket_removed path=%s", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        raise SocketInUse(f"cannot tell whether {path} is in use ({exc})") from exc
    finally:
        probe.close()
    raise SocketInUse(f"another server is answering on {path}; stop it or use another path")
