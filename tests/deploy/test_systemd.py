"""The systemd unit and sysusers file are what systemd accepts, and the unit is hardened.

Needs systemd's own tools (`systemd-analyze`, `systemd-sysusers`, Debian's
`systemd` package); skipped only where they are absent. No running systemd
is needed: `verify` and `security --offline` read the file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
analyze = shutil.which("systemd-analyze")
sysusers = shutil.which("systemd-sysusers")


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's console script
    (`verify` insists that the binary exists)."""
    script = Path(sys.executable).parent / "swarmnode"
    if not script.exists():
        pytest.skip("the swarmnode console script is not installed beside this Python")
    text = (DEPLOY / "swarmnode.service").read_text()
    path = tmp_path / "swarmnode.service"
    path.write_text(text.replace("/opt/swarmnode/bin/swarmnode", str(script)))
    return path


@pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(unit: Path) -> None:
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert unit.name not in done.stderr, done.stderr


@pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")
def test_the_unit_is_hardened_to_an_exposure_rated_ok(unit: Path) -> None:
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = next(x for x in done.stdout.splitlines() if "Overall exposure level" in x)
    score = float(line.split(":")[1].split()[0])
    assert score <= 2.0, done.stdout


def test_the_unit_runs_as_a_notify_service_that_reloads_with_sighup() -> None:
    text = (DEPLOY / "swarmnode.service").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["Type"] == "notify"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["User"] == "swarmnode" and settings["ProtectSystem"] == "strict"


@pytest.mark.skipif(sysusers is None, reason="systemd-sysusers is not installed")
def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    done = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(DEPLOY / "swarmnode.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert passwd.startswith("swarmnode:x:") and ":/var/lib/swarmnode:" in passwd
