"""The `swarmnode` command as scripts use it: readable output, `--json`, and exit codes.

Every command runs as its own process against one real node, exactly as a
shell script would call it.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from nodeproc import (
    NodeProcess,
    clean_env,
    remove_dir,
    run_cli,
    short_dir,
    start_node,
    swarmnode_command,
)


@pytest.fixture(scope="module")
def sn(shared_node: NodeProcess):
    """Run one client command against the shared node: `sn("get", "default", "k")`."""

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, socket_path=shared_node.socket, stdin=stdin)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def ok_json(result: subprocess.CompletedProcess[str]):
    return json.loads(ok(result))


def failed(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("swarmnode: ") or result.stderr.startswith("usage:")
    assert "Traceback" not in result.stderr
    return result.stderr


WATCH_START = 60.0
"""Seconds a `swarmnode watch` process may take to start and subscribe on a loaded machine."""


def write_until_watched(watcher: subprocess.Popen[str], write: Callable[[int], object]) -> int:
    """`write(i)` for i = 0, 1, ... until the watcher prints something; returns the last i.

    The watch subscribes asynchronously, so only its first event shows it is listening.
    """
    deadline = time.monotonic() + WATCH_START
    for i in itertools.count():
        write(i)
        if select.select([watcher.stdout], [], [], 0.1)[0]:
            return i
        assert time.monotonic() < deadline, f"no event within {WATCH_START:g}s: {watcher.poll()}"
    raise AssertionError("unreachable")


# --- values ---------------------------------------------------------------------------


def test_put_and_get_a_string(sn) -> None:
    stored = ok(sn("put", "default", "cli/greeting", "hello world"))
    assert stored == "stored default/cli/greeting\n"
    assert ok(sn("get", "default", "cli/greeting")) == "hello world\n"
    got = ok_json(sn("get", "default", "cli/greeting", "--json"))
    assert got["value"] == "hello world" and got["type"] == "register"
    assert got["ns"] == "default" and got["key"] == "cli/greeting"


def test_put_json_values_meta_and_ttl(sn) -> None:
    stored = ok_json(
        sn(
            "put",
            "tasks",
            "cli/t1",
            '{"state": "open", "n": [1, 2]}',
            "--json-value",
            "--meta",
            '{"owner": "agent-7"}',
            "--ttl",
            "120",
            "--json",
        )
    )
    assert stored["expires_at"] is not None
    got = ok_json(sn("get", "tasks", "cli/t1", "--json"))
    assert got["value"] == {"n": [1, 2], "state": "open"}
    assert got["meta"] == {"owner": "agent-7"}
    assert got["expires_at"] == stored["expires_at"]
    assert json.loads(ok(sn("get", "tasks", "cli/t1"))) == {"n": [1, 2], "state": "open"}


def test_ttls_read_as_ns_list_prints_them_and_json_output_stays_json(sn) -> None:
    stored = ok_json(sn("put", "default", "cli/ttl", "v", "--ttl", "1h", "--json"))
    assert stored["expires_at"] - stored["ts"] // 65536 == 3_600_000
    assert ok(sn("expire", "default", "cli/ttl", "5m")).startswith("default/cli/ttl expires ")
    bad = sn("put", "default", "cli/ttl", "v", "--ttl", "soon")
    assert bad.returncode == 2 and "90s, 5m, 4h, 7d" in bad.stderr
    ok(sn("put", "default", "cli/nan", "NaN", "--json-value"))
    got = ok(sn("get", "default", "cli/nan", "--json"))
    assert json.loads(got)["value"] == {"$float": "nan"}, "strict JSON: no bare NaN"


def test_put_reads_the_value_from_stdin(sn) -> None:
    ok(sn("put", "default", "cli/stdin", "-", stdin="line one\nline two\n"))
    assert ok_json(sn("get", "default", "cli/stdin", "--json"))["value"] == "line one\nline two\n"


def test_put_if_absent_conflicts_with_exit_4(sn) -> None:
    ok(sn("put", "default", "cli/once", "first", "--if-absent"))
    err = failed(sn("put", "default", "cli/once", "second", "--if-absent"), 4)
    assert "already exists" in err
    assert ok(sn("get", "default", "cli/once")) == "first\n"


def test_del_says_whether_there_was_something(sn) -> None:
    ok(sn("put", "default", "cli/doomed", "x"))
    assert ok(sn("del", "default", "cli/doomed")) == "deleted\n"
    assert ok(sn("del", "default", "cli/doomed")) == "nothing to delete\n"
    assert ok_json(sn("del", "default", "cli/doomed", "--json"))["deleted"] is False
    failed(sn("get", "default", "cli/doomed"), 3)


# --- listing and searching ------------------------------------------------------------


def test_ls_lists_keys_pages_with_a_cursor_and_shows_values(sn) -> None:
    for i in range(5):
        ok(sn("put", "lsns", f"item/{i}", f"value {i}"))
    ok(sn("incr", "lsns", "other"))
    table = ok(sn("ls", "lsns")).splitlines()
    assert table[0].split() == ["KEY", "TYPE", "EXPIRES"]
    assert [line.split()[0] for line in table[1:]] == [*(f"item/{i}" for i in range(5)), "other"]
    assert table[-1].split()[1:] == ["counter", "never"]

    page = ok(sn("ls", "lsns", "--prefix", "item/", "--limit", "2")).splitlines()
    assert page[-1] == "# more: --cursor item/1"
    rest = ok_json(sn("ls", "lsns", "--prefix", "item/", "--cursor", "item/1", "--json"))
    assert [i["key"] for i in rest["items"]] == ["item/2", "item/3", "item/4"]
    assert rest["cursor"] is None

    with_values = ok(sn("ls", "lsns", "--pattern", "item/[34]", "--values")).splitlines()
    assert with_values[0].split() == ["KEY", "TYPE", "EXPIRES", "VALUE"]
    assert [line.split(None, 3)[3] for line in with_values[1:]] == ["value 3", "value 4"]
    misspelt = sn("ls", "lsnss")
    assert misspelt.returncode == 3
    assert "namespace 'lsnss' does not exist; known:" in misspelt.stderr
    assert "lsns" in misspelt.stderr
    ok(sn("ns", "init", "emptyns"))
    assert ok(sn("ls", "emptyns")) == "(no keys)\n"


def test_search_finds_keys_and_values_across_namespaces(sn) -> None:
    ok(sn("put", "default", "cli/needle-key", "plain"))
    ok(sn("put", "patterns", "cli/p", "has a NEEDLE inside"))
    found = ok_json(sn("search", "needle", "--json"))
    hits = {(i["ns"], i["key"], i["match"]) for i in found["items"]}
    assert ("default", "cli/needle-key", "key") in hits
    assert ("patterns", "cli/p", "value") in hits
    table = ok(sn("search", "cli/needle*", "--ns", "default")).splitlines()
    assert table[0].split() == ["NS", "KEY", "MATCH", "VALUE"]
    assert table[1].split() == ["default", "cli/needle-key", "key", "plain"]
    assert ok(sn("search", "no-such-thing-anywhere")) == "(no matches)\n"


# --- counters and sets ------------------------------------------------------------------


def test_incr_prints_the_new_value(sn) -> None:
    assert ok(sn("incr", "default", "cli/count")) == "1\n"
    assert ok(sn("incr", "default", "cli/count", "10")) == "11\n"
    assert ok(sn("incr", "default", "cli/count", "-20")) == "-9\n"
    assert ok_json(sn("incr", "default", "cli/count", "--json"))["value"] == -8


def test_sets_add_remove_and_list_members(sn) -> None:
    assert ok(sn("sadd", "default", "cli/set", "b", "a", "c")) == "added 3\n"
    assert ok(sn("sadd", "default", "cli/set", "a", "d")) == "added 1\n"
    assert ok(sn("srem", "default", "cli/set", "a", "zz")) == "removed 1\n"
    assert ok(sn("smembers", "default", "cli/set")) == "b\nc\nd\n"
    assert ok_json(sn("smembers", "default", "cli/set", "--json"))["members"] == ["b", "c", "d"]
    assert ok(sn("get", "default", "cli/set")) == "b\nc\nd\n"


def test_operations_on_a_key_of_another_kind_exit_4(sn) -> None:
    ok(sn("put", "default", "cli/register", "x"))
    assert "not a counter" in failed(sn("incr", "default", "cli/register"), 4)
    failed(sn("sadd", "default", "cli/register", "m"), 4)
    failed(sn("smembers", "default", "cli/register"), 4)


# --- namespaces -------------------------------------------------------------------------


def test_ns_init_list_stats_and_delete(sn) -> None:
    made = ok(sn("ns", "init", "cli-team", "--ttl", "60", "--policy", "mv"))
    assert "policy: mv" in made.splitlines() and "ttl: 60.0" in made.splitlines()
    ok(sn("put", "cli-team", "k", "v"))
    table = ok(sn("ns", "list")).splitlines()
    assert table[0].split() == ["NAMESPACE", "POLICY", "TTL", "DIM", "ENTRIES", "BYTES"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["cli-team"][1:5] == ["mv", "1m", "-", "1"]
    assert rows["agents"][1:3] == ["lww", "1h"]
    assert rows["patterns"][2] == "7d" and rows["notifications"][2] == "5m"
    assert rows["decisions"][1] == "consensus"
    assert ok(sn("ns")) == ok(sn("ns", "list"))
    stats = ok_json(sn("ns", "stats", "cli-team", "--json"))
    assert stats["entries"] == 1 and stats["policy"] == "mv" and stats["bytes"] > 0
    every = ok_json(sn("ns", "stats", "--json"))
    assert {"cli-team", "swarm", "notifications"} <= set(every["namespaces"])
    table = ok(sn("ns", "stats")).splitlines()
    assert table[0].split() == ["NAMESPACE", "POLICY", "TTL", "ENTRIES", "TOMBSTONES", "BYTES"]
    assert {line.split()[0]: line.split()[3] for line in table[1:]}["cli-team"] == "1"
    assert ok(sn("ns", "delete", "cli-team")) == "namespace cli-team deleted\n"
    failed(sn("get", "cli-team", "k"), 3)
    failed(sn("ns", "init", "cli-team", "--dim", "0"), 2)


def test_ns_options_may_come_before_the_subcommand(shared_node: NodeProcess) -> None:
    result = run_cli("ns", "--json", "--socket", str(shared_node.socket), "list")
    assert result.returncode == 0, result.stderr
    assert "namespaces" in json.loads(result.stdout)


# --- maintenance ----------------------------------------------------------------------


def test_compact_reports_what_it_did(sn) -> None:
    out = ok(sn("compact"))
    assert out.startswith("removed ") and " entries in " in out and "disk " in out
    report = ok_json(sn("compact", "--ns", "default", "--json"))
    assert set(report) >= {"swept", "removed", "entries_removed", "disk_bytes_after"}
    assert set(report["removed"]) == {"default"}


def test_persist_and_restore_bring_back_the_snapshot(sn, shared_node: NodeProcess) -> None:
    ok(sn("put", "snapns", "a", "original"))
    ok(sn("incr", "snapns", "c", "3"))
    ok(sn("sadd", "snapns", "s", "x", "y"))
    saved = ok(sn("persist", "cli-session"))
    assert saved.startswith("snapshot cli-session at ")
    snap_dir = shared_node.data_dir / "snapshots" / "cli-session"
    assert str(snap_dir) in saved and (snap_dir / "data.mdb").exists()

    ok(sn("put", "snapns", "a", "changed"))
    ok(sn("incr", "snapns", "c", "10"))
    ok(sn("srem", "snapns", "s", "x"))
    ok(sn("sadd", "snapns", "s", "z"))
    ok(sn("put", "snapns", "new", "after the snapshot"))
    restored = ok_json(sn("restore", "cli-session", "--json"))
    assert restored["failed"] == 0 and restored["restored"] >= 3
    assert ok(sn("get", "snapns", "a")) == "original\n"
    assert ok(sn("get", "snapns", "c")) == "3\n"
    assert ok(sn("smembers", "snapns", "s")) == "x\ny\n"
    assert ok(sn("get", "snapns", "new")) == "after the snapshot\n"  # left alone
    again = ok(sn("restore", "cli-session"))
    assert again.startswith("restored 0, unchanged ")
    assert "no snapshot" in failed(sn("restore", "never-saved"), 3)
    failed(sn("persist", "../escape"), 2)


def test_status_members_and_sync_on_a_lone_node(sn, shared_node: NodeProcess) -> None:
    status = ok(sn("status"))
    assert status.startswith(f"node        {shared_node.node_id}")
    assert "writer" in status and "members     1 alive" in status
    assert "caches      store " in status and "MiB" in status
    stats = ok_json(sn("status", "--json"))
    assert stats["node_id"] == shared_node.node_id and stats["writer"]["ops"] > 0
    members = ok(sn("members")).splitlines()
    assert members[0].split() == ["NODE", "ADDRESS", "STATE", "INCARNATION", "FOR"]
    assert members[1].split()[:4] == [shared_node.node_id, "*", shared_node.gossip, "alive"]
    [me] = ok_json(sn("members", "--json"))["members"]
    assert me["self"] is True and me["address"] == shared_node.gossip
    assert ok(sn("sync")).startswith("0/0 peers synced")
    assert ok_json(sn("sync", "--json"))["rounds_failed"] == 0
    assert failed(sn("sync", "--peer", "10.9.9.9:1"), 3)
    assert ok_json(sn("ping", "--json"))["node_id"] == shared_node.node_id


def test_status_shows_the_consensus_group_a_lone_node_leads(sn, shared_node: NodeProcess) -> None:
    deadline = time.monotonic() + 60.0
    while (ok_json(sn("status", "--json"))["consensus"] or {}).get("role") != "leader":
        assert time.monotonic() < deadline, "a lone node forms its own group"
        time.sleep(0.05)
    group = ok_json(sn("status", "--json"))["consensus"]
    lines = ok(sn("status")).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("consensus   "))
    me = shared_node.node_id
    assert lines[at].startswith(
        f"consensus   leader, term {group['term']}, leader {me} (this node)"
    )
    assert ", commit " in lines[at] and ", applied " in lines[at]
    assert lines[at + 1].split() == ["voters", me]


def test_watch_streams_changes_until_interrupted(shared_node: NodeProcess) -> None:
    cmd = [*swarmnode_command(), "watch", "--ns", "watched", "--json"]
    cmd += ["--socket", str(shared_node.socket)]
    # A shell starts background jobs with SIGINT ignored and Python keeps an ignored
    # SIGINT ignored: give the watcher the default, as a terminal's Ctrl-C finds it.
    watcher = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        events = []
        with shared_node.client() as c:

            def write(i: int) -> None:
                c.put("watched", f"k{i}", i)
                c.put("unwatched", f"k{i}", i)

            i = write_until_watched(watcher, write)
            c.delete("watched", f"k{i}")
        events.append(json.loads(watcher.stdout.readline()))
        while events[-1]["event"] != "delete":
            events.append(json.loads(watcher.stdout.readline()))
        assert {e["ns"] for e in events} == {"watched"}
        assert events[-1] == {
            "event": "delete",
            "key": f"k{i}",
            "ns": "watched",
            "origin": "local",
            "seq": events[-1]["seq"],
        }
        puts = [e for e in events if e["event"] == "put"]
        assert puts and all(e["value"] == int(e["key"][1:]) for e in puts)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 0
    finally:
        watcher.kill()
        watcher.wait()


# --- exit codes and errors ----------------------------------------------------------------


def test_exit_codes_scripts_rely_on(sn) -> None:
    failed(sn("get", "default", "cli/never-written"), 3)
    failed(sn("put", "default", "k", "{not json", "--json-value"), 2)
    failed(sn("ls", "default", "--limit", "0"), 2)
    failed(sn("put", "bad namespace!", "k", "v"), 2)
    failed(sn("put", "default", "k", "v", "--vector", "[1, 2]"), 2)
    failed(sn("put", "default", "k" * 1025, "v"), 5)
    failed(sn("put", "default", "k", "-", stdin="v" * ((1 << 20) + 1)), 5)
    failed(sn("get", "default"), 2)  # usage error from the argument parser
    failed(sn("frobnicate"), 2)


def test_errors_are_json_on_stderr_with_json(sn) -> None:
    result = sn("get", "default", "cli/never-written", "--json")
    assert result.returncode == 3 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "not_found" and "cli/never-written" in error["message"]


def test_without_a_node_every_client_command_exits_6_with_a_clear_message(short_tmp) -> None:
    nowhere = short_tmp / "run" / "swarmnode.sock"
    for args in (["status"], ["get", "default", "k"], ["put", "default", "k", "v"], ["ns"]):
        result = run_cli(*args, socket_path=nowhere)
        assert result.returncode == 6, (args, result.stderr)
        assert f"cannot reach swarmnode at {nowhere}" in result.stderr
        assert "is the node running?" in result.stderr and "Traceback" not in result.stderr
    via_env = run_cli("status", env=clean_env(SWARMNODE_SOCKET=str(nowhere)))
    assert via_env.returncode == 6 and str(nowhere) in via_env.stderr


def test_keygen_writes_an_owner_only_key_once(short_tmp: Path) -> None:
    path = short_tmp / "cluster.key"
    made = run_cli("keygen", str(path))
    assert made.returncode == 0 and str(path) in made.stdout
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = path.read_bytes()
    again = run_cli("keygen", str(path))
    assert again.returncode != 0 and again.stderr.startswith("swarmnode: ")
    assert path.read_bytes() == key


def test_version_and_help(sn) -> None:
    assert ok(run_cli("--version")).startswith("swarmnode ")
    helptext = ok(run_cli("--help"))
    listed = {line.split()[0] for line in helptext.splitlines() if line.startswith("    ")}
    expected = (
        "run status put get del ls search incr sadd srem smembers ns compact persist restore "
        "members sync watch keygen"
    )
    assert set(expected.split()) <= listed


def test_socket_and_json_may_come_before_the_command(shared_node: NodeProcess) -> None:
    put = run_cli("--socket", str(shared_node.socket), "put", "default", "before", "v1")
    ok(put)
    got = run_cli("--socket", str(shared_node.socket), "--json", "get", "default", "before")
    assert ok_json(got)["value"] == "v1"
    refused = run_cli("--socket", str(shared_node.socket), "keygen", "/nonexistent/k")
    assert refused.returncode == 2
    assert "keygen takes no --socket" in refused.stderr


@pytest.mark.parametrize("vector", ['[1, "a"]', "[1, true]", '{"x": 1}', "[[1, 2]]"])
def test_a_vector_that_is_not_numbers_is_a_usage_error_not_a_crash(sn, vector: str) -> None:
    err = failed(sn("put", "default", "vec-bad", "v", "--vector", vector), 2)
    assert "vector" in err


def test_vectors_from_the_shell_are_json_lists_or_comma_separated_numbers(sn) -> None:
    ok(sn("ns", "init", "cli-vec", "--dim", "3", "--metric", "l2"))
    ok(sn("put", "cli-vec", "east", "e", "--vector", "1,0,0"))
    ok(sn("put", "cli-vec", "north", "n", "--vector", "[0, 1, 0]"))
    for query in ("0.9,0.1,0", " 0.9, 0.1, 0 ", "[0.9, 0.1, 0]"):
        found = ok_json(sn("vsearch", "cli-vec", "--vector", query, "-k", "1", "--json"))
        assert [item["key"] for item in found["items"]] == ["east"]
    assert "commas" in failed(sn("vsearch", "cli-vec", "--vector", "1,x,0"), 2)
    assert "commas" in failed(sn("put", "cli-vec", "k", "v", "--vector", "1;0;0"), 2)
    assert "3" in failed(sn("put", "cli-vec", "k", "v", "--vector", "1,0"), 2)


def test_a_watch_ends_with_exit_6_and_a_message_when_the_node_stops() -> None:
    base = short_dir("snw-")
    node = start_node(base / "data")
    try:
        cmd = [*swarmnode_command(), "watch", "--socket", str(node.socket)]
        watcher = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
        )
        with node.client() as c:
            write_until_watched(watcher, lambda i: c.put("default", f"w{i}", i))
        assert node.stop() == 0
        assert watcher.wait(30) == 6
        err = watcher.stderr.read()
        assert "Traceback" not in err
        assert err.startswith("swarmnode: ") and "shutting down" in err
    finally:
        node.close()
        remove_dir(base)


def test_a_reader_that_goes_away_ends_the_command_quietly(shared_node: NodeProcess) -> None:
    cmd = [*swarmnode_command(), "status", "--socket", str(shared_node.socket)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
    )
    proc.stdout.close()  # like `swarmnode status | head -0`
    assert proc.wait(60) == 0
    assert proc.stderr.read() == ""


def test_plaintext_gossip_off_loopback_is_refused_before_any_data_is_written() -> None:
    base = short_dir("snb-")
    try:
        result = run_cli("run", "--bind", "0.0.0.0:0", "--data-dir", str(base / "data"))
        assert result.returncode == 2  # a configuration that cannot work
        assert "without a cluster key" in result.stderr and "--insecure" in result.stderr
        assert not (base / "data").exists()
    finally:
        remove_dir(base)


def test_a_one_shot_command_does_not_load_numpy_or_asyncio() -> None:
    """Scripts call the CLI in loops: importing numpy and asyncio doubled its start-up."""
    probe = (
        "import sys; from swarmnode.cli import build_parser; from swarmnode.client import Client; "
        "print(sorted(m for m in ('numpy', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=clean_env()
    )
    assert out.stdout.strip() == "[]"


def test_check_judges_histories_through_the_main_command() -> None:
    data = Path(__file__).parent.parent / "check" / "data" / "jepsen-etcd"
    good = subprocess.run(
        [*swarmnode_command(), "check", str(data / "etcd_002.log")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0 and good.stdout.strip() == "etcd_002.log linearizable"
    bad = subprocess.run(
        [*swarmnode_command(), "check", str(data / "etcd_000.log"), str(data / "etcd_002.log")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == ["etcd_000.log not-linearizable", "etcd_002.log linearizable"]
