"""Cluster key files: creation, loading, rotation order, and refusal of unusable files."""

from __future__ import annotations

import base64
import logging
import os
import stat

import pytest

from swarmnode.transport import KeyFileError, Keyring, generate_key_file
from swarmnode.transport.keyring import key_id_of


def b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


def write_key_file(path, text: str, mode: int = 0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_generated_key_file_is_owner_only_and_loads_back(tmp_path):
    path = tmp_path / "cluster.key"
    ring = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Keyring.from_file(path)
    assert [k.secret for k in loaded.keys] == [k.secret for k in ring.keys]
    assert len(loaded.primary.secret) == 32


def test_generated_keys_differ(tmp_path):
    first = generate_key_file(tmp_path / "a.key")
    second = generate_key_file(tmp_path / "b.key")
    assert first.primary.secret != second.primary.secret


def test_generate_refuses_to_overwrite(tmp_path):
    path = tmp_path / "cluster.key"
    path.write_text("precious\n")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_key_file(path)
    assert path.read_text() == "precious\n"


def test_first_line_is_primary_and_every_line_opens(tmp_path):
    new, old = os.urandom(32), os.urandom(32)
    text = f"# rotated in 2025-01\n{b64(new)}\n\n  {b64(old)}  \n"
    ring = Keyring.from_file(write_key_file(tmp_path / "k", text))
    assert ring.primary.secret == new
    assert ring.lookup(key_id_of(old)).secret == old
    assert ring.lookup(key_id_of(new)).secret == new
    assert ring.lookup(b"\x00\x00\x00\x00") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no keys"),
        ("# only a comment\n\n", "no keys"),
        ("not base64!\n", "line 1: not valid base64"),
        (f"{b64(os.urandom(32))}\n{b64(os.urandom(16))}\n", "line 2: key is 16 bytes"),
        (f"{b64(os.urandom(33))}\n", "line 1: key is 33 bytes"),
    ],
)
def test_malformed_key_files_are_refused_with_the_line(tmp_path, text, problem):
    with pytest.raises(KeyFileError, match=problem):
        Keyring.from_file(write_key_file(tmp_path / "k", text))


def test_key_file_errors_never_echo_key_material(tmp_path):
    short = b64(os.urandom(31))
    with pytest.raises(KeyFileError) as caught:
        Keyring.from_file(write_key_file(tmp_path / "k", short + "\n"))
    assert short not in str(caught.value)


def test_duplicate_keys_are_refused(tmp_path):
    key = b64(os.urandom(32))
    with pytest.raises(KeyFileError, match="duplicates"):
        Keyring.from_file(write_key_file(tmp_path / "k", f"{key}\n{key}\n"))


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "k"
    path.write_bytes(os.urandom(64) + b"\xff")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="not ASCII"):
        Keyring.from_file(path)


def test_missing_file_is_a_key_file_error(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read"):
        Keyring.from_file(tmp_path / "absent")


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_key_file_writable_by_others_is_refused(tmp_path, mode):
    path = write_key_file(tmp_path / "k", b64(os.urandom(32)) + "\n", mode)
    with pytest.raises(KeyFileError, match="writable by group or others"):
        Keyring.from_file(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o444])
def test_key_file_readable_by_others_loads_with_a_warning(tmp_path, caplog, mode):
    path = write_key_file(tmp_path / "k", b64(os.urandom(32)) + "\n", mode)
    with caplog.at_level(logging.WARNING, logger="swarmnode.transport"):
        Keyring.from_file(path)
    assert "readable by group or others" in caplog.text


def test_owner_only_key_file_loads_silently(tmp_path, caplog):
    path = write_key_file(tmp_path / "k", b64(os.urandom(32)) + "\n", 0o400)
    with caplog.at_level(logging.WARNING, logger="swarmnode.transport"):
        Keyring.from_file(path)
    assert caplog.text == ""


def test_keyring_repr_shows_key_ids_not_secrets():
    secret = os.urandom(32)
    text = repr(Keyring([secret]))
    assert key_id_of(secret).hex() in text
    assert secret.hex() not in text
    assert b64(secret) not in text


def test_keyring_needs_a_key_of_the_right_size():
    with pytest.raises(KeyFileError):
        Keyring([])
    with pytest.raises(KeyFileError):
        Keyring([b"short"])
