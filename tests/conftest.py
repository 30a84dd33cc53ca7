"""Shared fixtures: a clean environment for every test, a typer CLI runner, and a local conda
channel (``tests/channel.py``) with projects locked against it."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channel import LocalChannel, build_channel, serve_channel
from realpython import RealPythonChannel
from typer.testing import CliRunner, Result

from setup_tool.cli import app

REPO_ROOT = Path(__file__).resolve().parent.parent


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="session")
def refusing_address() -> Iterator[str]:
    """``127.0.0.1:<port>`` where every connection is refused, for the whole session.

    The port stays bound (and not listening) until the end, so no other process can take it.
    """
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{reserved.getsockname()[1]}"


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, refusing_address: str
) -> Iterator[None]:
    """Drop every variable that changes setup-tool's decisions, give each test its own cache,
    and keep every test offline by construction.

    A developer's shell (or CI's) may set SETUP_TOOL_VARIANT, CONDA_OVERRIDE_CUDA or
    CUDA_VISIBLE_DEVICES; tests must see the same baseline everywhere, and set what they test.
    The package and repodata cache (SETUP_TOOL_CACHE) is never the user's: ``tmp_path/cache``.

    Offline: every HTTP client the tool and its subprocesses use (py-rattler's reqwest,
    urllib, pip, uv) sends non-local requests through ``HTTPS_PROXY``/``HTTP_PROXY``, which
    point at a refusing 127.0.0.1 port, so a test that would reach conda-forge or PyPI fails
    at once, on any machine, whatever its network. 127.0.0.1 and localhost (the tests' own
    servers) bypass it (``NO_PROXY``). In this process, ``_refuse_remote_connections`` also
    refuses any socket connection to a non-loopback address.
    """
    for name in list(os.environ):
        if (
            name.startswith(("SETUP_TOOL_", "CONDA_OVERRIDE_"))
            or name == "CUDA_VISIBLE_DEVICES"
            or name.upper() in PROXY_VARIABLES
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SETUP_TOOL_CACHE", str(tmp_path / "cache"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://{refusing_address}")
        monkeypatch.setenv(name.lower(), f"http://{refusing_address}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost,::1")
    _refuse_remote_connections(monkeypatch)
    yield


def _refuse_remote_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python-level sockets of this process may only connect to loopback or Unix sockets."""
    import ipaddress

    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise ConnectionRefusedError(f"tests run offline: no connection to {host}")
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


class Cli:
    """Invokes the CLI in-process; ``ok`` asserts exit 0 and shows the output when it is not."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Result:
        result = self(*args, env=env)
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def cli() -> Cli:
    return Cli()


_session_status = {"code": 0}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _session_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalization once py-rattler was used in-process.

    py-rattler 0.28's tokio threads can crash a finalizing interpreter (SIGSEGV or
    "PyGILState_Release ... finalizing"; ~25% of processes that made one py-rattler call,
    ``scripts/repro-rattler-shutdown.py``), which would turn a green run into exit code 139.
    Same reason as ``setup_tool.cli.main``: everything is reported and flushed by now.
    """
    import sys

    if "rattler" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session_status["code"])


# --- The local conda channel (see tests/channel.py for what it holds) ---------------------------


@pytest.fixture(scope="session")
def local_channel(tmp_path_factory: pytest.TempPathFactory) -> LocalChannel:
    """A channel mimicking conda-forge's PyTorch packaging, built once per session (~0.3 s).

    Shared and read-only: use ``local_channel.copy_to(tmp_path / "channel")`` to tamper with
    a package or ``.add([...])`` a release.
    """
    return build_channel(tmp_path_factory.mktemp("channel") / "conda-forge-like")


@pytest.fixture(scope="session")
def channel_url(local_channel: LocalChannel) -> str:
    """The local channel as a ``file://`` URL."""
    return local_channel.url


@pytest.fixture(scope="session")
def http_channel_url(local_channel: LocalChannel) -> Iterator[str]:
    """The local channel served on ``http://127.0.0.1:<port>`` for the whole session."""
    with serve_channel(local_channel.root) as url:
        yield url


@pytest.fixture
def unreachable_channel_url() -> str:
    """An http:// channel on a 127.0.0.1 port that nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/conda-forge"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project: a copy of the repository's ``envs/*.yml`` specs, without locks."""
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    for spec in (REPO_ROOT / "envs").glob("*.yml"):
        shutil.copy2(spec, root / "envs" / spec.name)
    return root


@pytest.fixture(scope="session")
def locked_project(tmp_path_factory: pytest.TempPathFactory, channel_url: str) -> Path:
    """A project whose cuda, mps and cpu variants are locked against the local channel.

    ``envs/locks/<variant>.conda-lock.yml`` hold ``file://`` URLs into ``local_channel``.
    Shared and read-only: copy it (``shutil.copytree``) to change it.
    """
    from setup_tool.lock import lock_variants
    from setup_tool.variants import Variant

    root = tmp_path_factory.mktemp("locked") / "project"
    (root / "envs").mkdir(parents=True)
    for spec in (REPO_ROOT / "envs").glob("*.yml"):
        shutil.copy2(spec, root / "envs" / spec.name)
    lock_variants(
        root,
        list(Variant),
        channels=[channel_url],
        environ={},
        cache_dir=tmp_path_factory.mktemp("cache"),
    )
    return root


@pytest.fixture
def cpu_lock(locked_project: Path) -> Path:
    """The cpu variant's lockfile in ``locked_project`` (read-only)."""
    return locked_project / "envs" / "locks" / "cpu.conda-lock.yml"


# --- The real Python package (see tests/realpython.py) ------------------------------------------


@pytest.fixture(scope="session")
def real_python(tmp_path_factory: pytest.TempPathFactory) -> RealPythonChannel:
    """A channel whose ``python`` is the interpreter running the tests, relocatable; built
    once per session (2-4 s, ~20 MB). Shared and read-only."""
    from realpython import build_python_channel

    root = tmp_path_factory.mktemp("real-python")
    return build_python_channel(root / "channel", root / "work")
