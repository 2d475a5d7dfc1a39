"""Cluster keys: the shared secrets that seal and open gossip envelopes.

A cluster key file is text with one base64-encoded 32-byte key per line. Blank
lines and lines starting with `#` are ignored, so operators can note when a key
was introduced. The first key is the *primary*: every envelope this node seals
uses it. Every key in the file is accepted when opening, which is what makes
rotation possible without a flag day:

1. Generate a new key and add it as the *second* line on every node, restarting
   (or reloading) each. Nodes still seal with the old key; all nodes now accept
   both.
2. Once every node has both keys, move the new key to the *first* line
   everywhere. Nodes start sealing with the new key; nodes not yet updated
   still open those packets because they already hold it.
3. Once every node seals with the new key, delete the old line everywhere.

Skipping step 1 (putting a new key first on one node before the others know
it) partitions that node until the others catch up: its packets are dropped and
counted as `dropped_auth`.

Each key has a short key id derived from it by a one-way hash, carried in the
clear in every envelope so the receiver picks the right key without trial
decryption. The id reveals nothing about the key; two keys in one ring whose
ids collide (odds 2**-32) are refused at load time.

Permissions: a key file writable by group or others is refused, since anyone
who can add a line can join the cluster. A file readable by group or others is
accepted with a warning: container secret mounts are commonly 0644 or 0444 and
owned by root, and refusing them would push operators into copying keys around.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

log = logging.getLogger("swarmnode.transport")

KEY_BYTES = 32
KEY_ID_BYTES = 4
MAX_KEY_FILE_BYTES = 64 * 1024
"""A key file is a handful of lines; anything bigger is the wrong file."""

_KEY_ID_PERSON = b"swarmnode-keyid"


class KeyFileError(ValueError):
    """A cluster key file that cannot be used: missing, malformed, unsafe or empty."""


def key_id_of(key: bytes) -> bytes:
    """The public handle of a key: a domain-separated one-way hash of it."""
    return hashlib.blake2b(key, digest_size=KEY_ID_BYTES, person=_KEY_ID_PERSON).digest()


@dataclass(frozen=True)
class ClusterKey:
    """One 32-byte key, its id, and the cipher object built once for it."""

    secret: bytes = field(repr=False)
    key_id: bytes
    aead: ChaCha20Poly1305 = field(repr=False, compare=False)

    @classmethod
    def from_bytes(cls, secret: bytes) -> ClusterKey:
        if len(secret) != KEY_BYTES:
            raise KeyFileError(f"a cluster key is {KEY_BYTES} bytes, got {len(secret)}")
        return cls(secret=secret, key_id=key_id_of(secret), aead=ChaCha20Poly1305(secret))


class Keyring:
    """The keys a node holds: the first seals, all of them open."""

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise KeyFileError("a keyring needs at least one key")
        keys = [ClusterKey.from_bytes(s) for s in secrets]
        by_id: dict[bytes, ClusterKey] = {}
        for position, key in enumerate(keys, start=1):
            if key.key_id in by_id:
                raise KeyFileError(
                    f"key {position} duplicates an earlier key (key id {key.key_id.hex()})"
                )
            by_id[key.key_id] = key
        self.keys: tuple[ClusterKey, ...] = tuple(keys)
        self._by_id = by_id

    @property
    def primary(self) -> ClusterKey:
        return self.keys[0]

    def lookup(self, key_id: bytes) -> ClusterKey | None:
        return self._by_id.get(key_id)

    def __repr__(self) -> str:
        ids = ", ".join(k.key_id.hex() for k in self.keys)
        return f"Keyring([{ids}])"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Load a key file; raises KeyFileError with the path and line, never the key."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                _check_permissions(path, os.fstat(fh.fileno()).st_mode)
                raw = fh.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise KeyFileError(f"cannot read cluster key file {path}: {exc.strerror}") from exc
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"cluster key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
        return cls(parse_key_file(raw, source=str(path)))


def parse_key_file(raw: bytes, *, source: str = "key file") -> list[bytes]:
    """The keys of a key file's contents, in order; raises KeyFileError naming the line."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"{source}: not ASCII text (expected base64 keys)") from exc
    secrets = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            secret = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFileError(f"{source} line {number}: not valid base64") from exc
        if len(secret) != KEY_BYTES:
            raise KeyFileError(
                f"{source} line {number}: key is {len(secret)} bytes, expected {KEY_BYTES}"
            )
        secrets.append(secret)
    if not secrets:
        raise KeyFileError(f"{source}: no keys")
    return secrets


def generate_key_file(path: str | os.PathLike[str]) -> Keyring:
    """Create a key file holding one new random key, owner-only; never overwrites."""
    path = Path(path)
    secret = os.urandom(KEY_BYTES)
    line = base64.b64encode(secret) + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a cluster key") from exc
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return Keyring([secret])


def _check_permissions(path: Path, mode: int) -> None:
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeyFileError(
            f"cluster key file {path} is writable by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "cluster key file readable by group or others path=%s mode=%04o",
            path,
            stat.S_IMODE(mode),
        )
