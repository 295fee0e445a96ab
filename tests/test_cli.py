"""The ``switchboard`` command as a user runs it: a port in use is one line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=REPO, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "SWITCHBOARD_CONFIG": str(REPO / "config.yaml"), **env},
        timeout=60,
    )


def test_serve_on_a_port_in_use_says_so_in_one_line(taken_port: int, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = _cli({"SWITCHBOARD_HTTP_PORT": str(taken_port),
                 "SWITCHBOARD_DATA_DIR": str(data_dir)}, "serve")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"switchboard: cannot listen on 127.0.0.1:{taken_port}: address already in use "
        "(set SWITCHBOARD_HTTP_HOST / SWITCHBOARD_HTTP_PORT)"]
    assert proc.stdout == ""
    assert not data_dir.exists()  # refused before the embedded databases started


def test_simulate_on_a_port_in_use_says_so_in_one_line(taken_port: int) -> None:
    proc = _cli({}, "simulate", "--port", str(taken_port))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"switchboard: cannot listen on 127.0.0.1:{taken_port}: address already in use "
        "(use --host / --port)"]
    assert proc.stdout == ""


def test_an_address_that_is_not_ours_is_one_line_too(tmp_path: Path) -> None:
    proc = _cli({"SWITCHBOARD_HTTP_HOST": "192.0.2.1",  # TEST-NET-1: on no local interface
                 "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}, "serve")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "switchboard: cannot listen on 192.0.2.1:8001: cannot assign requested address "
        "(set SWITCHBOARD_HTTP_HOST / SWITCHBOARD_HTTP_PORT)"]
