"""What the install tests share: locking a channel copy, running the installer in a subprocess
(so it can be killed), a throttled HTTP server, and snapshots that prove "nothing changed"."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channel import ChannelHandler, LocalChannel, serve_channel

from setup_tool.variants import Variant

STATE = Path("conda-meta") / "setup-tool.state"
SPECS = Path(__file__).resolve().parent.parent / "envs"


# --- Locks ---------------------------------------------------------------------------------------


def lock_project(
    root: Path,
    channel: str,
    variant: Variant = Variant.cpu,
    platforms: tuple[str, ...] = ("linux-64",),
) -> Path:
    """Lock ``variant`` for ``platforms`` against ``channel`` in the project at ``root`` (made
    from the repository's ``envs/*.yml`` when new); returns the lockfile."""
    from setup_tool.lock import lock_variants

    if not (root / "envs").is_dir():
        (root / "envs").mkdir(parents=True)
        for spec in SPECS.glob("*.yml"):
            shutil.copy2(spec, root / "envs" / spec.name)
    lock_variants(
        root,
        [variant],
        platforms=list(platforms),
        channels=[channel],
        environ={},
        cache_dir=root / ".lock-cache",
    )
    return root / "envs" / "locks" / f"{variant.value}.conda-lock.yml"


def locked_builds(lockfile: Path, platform: str = "linux-64") -> dict[str, str]:
    """name → "version build" of a lock's packages for one platform."""
    from setup_tool.install.lockread import read_locked_platform

    locked = read_locked_platform(lockfile, platform)
    return {p.name: f"{p.version} {p.build}" for p in locked.packages}


# --- The environment at a prefix -----------------------------------------------------------------


def env_torch(prefix: Path) -> dict[str, str | None]:
    """Run the environment's own (stub) python: which torch it imports, and from where."""
    script = (
        "import json, torch, torchvision; print(json.dumps({'version': torch.__version__, "
        "'build': torch.__build__, 'cuda': torch.version.cuda, 'file': torch.__file__, "
        "'torchvision': torchvision.__version__}))"
    )
    done = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


def installed(prefix: Path) -> dict[str, str]:
    """name → "version build" from the prefix's conda-meta records (what py-rattler wrote)."""
    records = {}
    for path in (prefix / "conda-meta").glob("*.json"):
        record = json.loads(path.read_text())
        records[record["name"]] = f"{record['version']} {record['build']}"
    return records


def state(prefix: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((prefix / STATE).read_text())
    return data


def assert_env_matches(prefix: Path, lockfile: Path, platform: str = "linux-64") -> None:
    """The prefix holds exactly the lock's packages, is complete, and works from its own path."""
    prefix = prefix.absolute()
    expected = locked_builds(lockfile, platform)
    assert installed(prefix) == expected
    recorded = state(prefix)
    assert recorded["lockfile_sha256"] == hashlib.sha256(lockfile.read_bytes()).hexdigest()
    torch = env_torch(prefix)
    assert f"{torch['version']} {torch['build']}" == expected["pytorch"]
    assert torch["file"] == str(prefix / "lib/python3.12/site-packages/torch/__init__.py")
    # Relocated at link time: the text files carry the final prefix, never the staging one.
    launcher = (prefix / "bin" / "python").read_text()
    assert f'prefix="{prefix}"' in launcher
    assert_no_leftovers(prefix)


def assert_no_leftovers(prefix: Path) -> None:
    """Nothing an install leaves behind next to the prefix but its lock file."""
    siblings = {p.name for p in prefix.parent.iterdir() if p.name.startswith(f".{prefix.name}.")}
    assert siblings <= {f".{prefix.name}.lock"}, siblings
    staged = [line for line in _text_files(prefix) if ".staging-" in line]
    assert not staged, staged


def _text_files(prefix: Path) -> Iterator[str]:
    for path in prefix.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                yield from (f"{path}: {line}" for line in path.read_text().splitlines())
            except UnicodeDecodeError:
                continue


@dataclass(frozen=True)
class Entry:
    kind: str
    size: int
    digest: str
    mtime_ns: int


def snapshot(*roots: Path) -> dict[str, Entry]:
    """Every file, directory and link under ``roots`` with its content digest and mtime."""
    found: dict[str, Entry] = {}
    for root in roots:
        if not root.exists() and not root.is_symlink():
            continue
        for path in [root, *sorted(root.rglob("*"))]:
            info = path.lstat()
            if path.is_symlink():
                entry = Entry("link", 0, str(path.readlink()), info.st_mtime_ns)
            elif path.is_dir():
                entry = Entry("dir", 0, "", info.st_mtime_ns)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entry = Entry("file", info.st_size, digest, info.st_mtime_ns)
            found[str(path)] = entry
    return found


# --- Running the installer -----------------------------------------------------------------------


def cli_env(cache: Path, project: Path | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for a ``setup-tool`` subprocess (the test's own is already clean)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SETUP_TOOL_", "CONDA_OVERRIDE_")) and k != "CUDA_VISIBLE_DEVICES"
    }
    env["SETUP_TOOL_CACHE"] = str(cache)
    if project is not None:
        env["SETUP_TOOL_PROJECT"] = str(project)
    env.update(extra)
    return env


def install_argv(lockfile: Path, prefix: Path, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "setup_tool",
        "install",
        "--lockfile",
        str(lockfile),
        "--prefix",
        str(prefix),
        *more,
    ]


def run_install(
    lockfile: Path, prefix: Path, env: Mapping[str, str], *more: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        install_argv(lockfile, prefix, *more),
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )


# --- A channel served slowly ---------------------------------------------------------------------


GATE_TIMEOUT_S = 300.0  # a held download is let go by then even if the test forgot to


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class SlowServer:
    """``url`` serves a channel; package files go out in ``chunk``-byte pieces every ``delay``
    seconds. ``started`` is set when the first package download has sent bytes. While
    ``gate`` is cleared, a throttled download stops after its first piece and waits for it
    (at most ``GATE_TIMEOUT_S``): a test holds an install mid-download for as long as it needs,
    whatever the machine's load."""

    url: str
    delay: float
    chunk: int = 256
    only: str | None = None  # throttle only files whose name contains this (None: every package)
    break_after: int | None = None  # drop the connection after this many bytes of a package
    started: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # bytes of each throttled file sent
    gate: threading.Event = field(default_factory=_open_gate)


def _slow_handler(server: SlowServer) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(ChannelHandler):
        def copyfile(self, source: Any, outputfile: Any) -> None:
            is_package = self.path.endswith((".conda", ".tar.bz2"))
            if not is_package or (server.only is not None and server.only not in self.path):
                shutil.copyfileobj(source, outputfile)
                return
            server.requests.append(self.path)
            sent = 0
            try:
                while data := source.read(server.chunk):
                    if server.break_after is not None and sent >= server.break_after:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)  # mid-body, as a bad link
                        return
                    outputfile.write(data)
                    outputfile.flush()
                    sent += len(data)
                    server.sent[self.path] = sent
                    server.started.set()
                    server.gate.wait(GATE_TIMEOUT_S)
                    time.sleep(server.delay)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client was killed: what some tests do on purpose

    return Handler


@contextmanager
def serve_slowly(
    root: Path, delay: float, chunk: int = 256, only: str | None = None
) -> Iterator[SlowServer]:
    """Serve ``root`` on 127.0.0.1 with package downloads throttled (see ``SlowServer``)."""
    state = SlowServer(url="", delay=delay, chunk=chunk, only=only)
    with serve_channel(root, _slow_handler(state)) as url:
        state.url = url
        yield state


def wait_for(condition: Callable[[], bool], timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)


def pytorch_archive(channel: LocalChannel, build: str, version: str = "2.13.0") -> Path:
    (package,) = [
        p
        for p in channel.find("pytorch", "linux-64", build=build)
        if p.version == version and "py312" in p.build
    ]
    return package.path
