"""A damaged snapshot file is reported as such (Unavailable naming it), never a crash.

Found by fuzzing snapshot files byte by byte: garbled pages made
`SnapshotReader` raise lmdb.CorruptedError from `open_db`; a data.mdb cut
short, and (data/sigbus_snapshot.mdb) one whose page holds a node offset
past the end of the file, made LMDB read beyond the mapped file, and the
process died of SIGBUS. `restore` takes snapshots from disk, where bytes
rot and files get copied in from elsewhere; it must not take the node down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.errors import Unavailable
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Put, SAdd
from swarmnode.storage.snapshot import SnapshotReader

PAGE = 4096


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    store = Store(tmp_path / "d")
    store.apply([Put("swarm", f"k{i}", {"i": i}) for i in range(50)], 1_700_000_000_000)
    store.apply([SAdd("swarm", "s", ["a", "b"])], 1_700_000_000_001)
    path = store.snapshot("snap", tmp_path / "snaps")
    store.close()
    return path


DATA = Path(__file__).resolve().parent / "data"


def read_all(path: Path) -> int:
    with SnapshotReader(path) as reader:
        return sum(1 for _ in reader.entries_of())


def test_a_page_that_makes_lmdb_read_past_the_file_is_unavailable_not_a_crash(
    tmp_path: Path,
) -> None:
    (tmp_path / "data.mdb").write_bytes((DATA / "sigbus_snapshot.mdb").read_bytes())
    with pytest.raises(Unavailable, match="damaged"):
        read_all(tmp_path)


def test_an_intact_snapshot_reads_in_full(snapshot: Path) -> None:
    assert read_all(snapshot) == 51


@pytest.mark.parametrize("page", [0, 1, 2, 3, 4, 5])
def test_a_page_of_garbage_is_reported_as_a_damaged_snapshot(snapshot: Path, page: int) -> None:
    data = bytearray((snapshot / "data.mdb").read_bytes())
    if (page + 1) * PAGE > len(data):
        pytest.skip("the snapshot has fewer pages")
    data[page * PAGE + 16 : (page + 1) * PAGE] = bytes(range(256)) * 15 + bytes(240)
    (snapshot / "data.mdb").write_bytes(bytes(data))
    try:
        read_all(snapshot)
    except Unavailable as exc:
        assert str(snapshot) in exc.message


def test_a_truncated_snapshot_is_unavailable(snapshot: Path) -> None:
    data = (snapshot / "data.mdb").read_bytes()
    (snapshot / "data.mdb").write_bytes(data[: 2 * PAGE + 100])
    with pytest.raises(Unavailable):
        read_all(snapshot)
