"""``install --dry-run`` never contacts the channel: it answers from the lock, the cache and the
prefix alone, and says when download sizes are unknown and why (its speed on a lock of ~1,000
packages is measured by scripts/bench-dry-run.py, not asserted here)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from install_helpers import cli_env

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "realworld-locks"
PANGEO = REAL / "pangeo-data-pangeo-docker-images-pytorch-notebook.conda-lock.yml"


@contextmanager
def hanging_proxy() -> Iterator[tuple[str, list[socket.socket]]]:
    """A proxy on 127.0.0.1 that accepts connections and never answers; yields its URL and the
    connections it accepted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def _remote_lock(tmp_path: Path, locked_project: Path, channel_url: str) -> tuple[Path, int]:
    """A lock whose every package is remote (https), and how many packages it has: a real one
    of 885 packages when the real-world files are here, else our cpu lock pointed at https."""
    if PANGEO.is_file():
        return PANGEO, 800
    text = (locked_project / "envs" / "locks" / "cpu.conda-lock.yml").read_text()
    path = tmp_path / "remote.conda-lock.yml"
    path.write_text(text.replace(channel_url, "https://conda.anaconda.org/conda-forge"))
    return path, 5


def test_dry_run_behind_a_hanging_proxy_makes_no_connection(
    tmp_path: Path, locked_project: Path, channel_url: str
) -> None:
    lockfile, at_least = _remote_lock(tmp_path, locked_project, channel_url)
    with hanging_proxy() as (proxy, accepted):
        env = cli_env(
            tmp_path / "cache",
            CONDA_OVERRIDE_CUDA="13.0",
            CONDA_OVERRIDE_GLIBC="2.36",
            HTTPS_PROXY=proxy,
            HTTP_PROXY=proxy,
            https_proxy=proxy,
            http_proxy=proxy,
        )
        argv = [sys.executable, "-m", "setup_tool", "install", "--dry-run", "--json"]
        argv += ["--lockfile", str(lockfile), "--prefix", str(tmp_path / "env")]
        # The bound is only there so a regression (a request per package, ~10 min behind this
        # proxy) fails instead of hanging the suite; the assertion is the connection count.
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
        assert accepted == []
    plan = json.loads(done.stdout)["plan"]
    download = plan["download"]
    assert download["packages"] == len(plan["add"]) > at_least
    assert download["bytes"] is None and download["unknown_sizes"] == download["packages"]
    assert "does not contact the channel" in download["size_note"]
    assert not (tmp_path / "env").exists()


def test_local_sizes_are_counted(cli, locked_project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """file:// packages have known sizes, so the plan has a total and no note."""
    lockfile = locked_project / "envs" / "locks" / "cpu.conda-lock.yml"
    args = ["install", "--dry-run", "--json", "--lockfile", str(lockfile)]
    result = cli(*args, "--prefix", str(tmp_path / "env"))
    assert result.exit_code == 0, result.output
    download = json.loads(result.stdout)["plan"]["download"]
    assert download["bytes"] == download["known_bytes"] > 0
    assert (download["unknown_sizes"], download["size_note"]) == (0, None)
    text = cli(*args[:2], *args[3:], "--prefix", str(tmp_path / "env"))
    assert "KiB" in text.stdout and "unknown" not in text.stdout


def test_an_up_to_date_environment_needs_no_download(cli, cpu_lock: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Nothing to add, change or remove: the install would do nothing, so the dry run must not
    announce a download, even when the package cache was emptied since."""
    prefix = tmp_path / "env"
    args = ["install", "--lockfile", str(cpu_lock), "--prefix", str(prefix)]
    cli.ok(*args)
    shutil.rmtree(os.environ["SETUP_TOOL_CACHE"])
    text = cli.ok(*args, "--dry-run").stdout
    assert "0 to add, 0 to change, 0 to remove, 9 unchanged; download 0 packages (nothing)" in text
    download = json.loads(cli.ok(*args, "--dry-run", "--json").stdout)["plan"]["download"]
    assert (download["packages"], download["bytes"]) == (0, 0)
