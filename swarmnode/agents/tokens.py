"""Agent tokens: a random secret shown once, kept only as a salted hash.

A token reads `sn_<agent>.<token id>.<secret>`: the agent id and the token id
say which registration to check it against, the secret (32 random bytes,
base64url) is what proves it. The node stores blake2b(secret, salt) with a
random per-token salt and compares in constant time. A fast hash is enough
because the secret is 256 random bits: there is no dictionary to try, so a
slow password hash would only slow every `hello` down.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "sn_"
SECRET_BYTES = 32
SALT_BYTES = 16
TOKEN_ID_BYTES = 8
MAX_TOKEN_CHARS = 256


@dataclass(frozen=True)
class TokenHash:
    """What the node keeps of a token: its id, salt and hash (hex)."""

    token_id: str
    salt: str
    digest: str

    def to_value(self) -> dict[str, str]:
        return {"id": self.token_id, "salt": self.salt, "hash": self.digest}


@dataclass(frozen=True)
class Presented:
    """A token as a client presented it, split into its parts."""

    agent: str
    token_id: str
    secret: str


def _digest(secret: str, salt: bytes) -> str:
    return hashlib.blake2b(secret.encode(), key=salt, digest_size=32).hexdigest()


def issue(agent: str) -> tuple[str, TokenHash]:
    """A new token for `agent`: the text to hand out once, and what to store."""
    token_id = secrets.token_hex(TOKEN_ID_BYTES)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    salt = secrets.token_bytes(SALT_BYTES)
    stored = TokenHash(token_id, salt.hex(), _digest(secret, salt))
    return f"{PREFIX}{agent}.{token_id}.{secret}", stored


def parse(token: object) -> Presented | None:
    """The parts of a well-formed token, or None (never an exception: it is client input)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX):
        return None
    parts = token[len(PREFIX) :].split(".")
    if len(parts) != 3 or not all(parts):
        return None
    return Presented(*parts)


def matches(presented: Presented, stored: TokenHash) -> bool:
    """Whether the presented secret is the one `stored` was made from (constant time)."""
    try:
        salt = bytes.fromhex(stored.salt)
    except ValueError:
        return False
    same_id = hmac.compare_digest(presented.token_id, stored.token_id)
    same_secret = hmac.compare_digest(_digest(presented.secret, salt), stored.digest)
    return same_id and same_secret
