"""Which wheel indexes a ``- pip:`` section is locked from, and whether they answer.

The indexes, highest priority first, are the spec's ``pip-repositories`` (conda-lock's key),
then PyPI unless ``allow-pypi-requests: false``, as conda-lock searches them. For a mirror or a
local index, ``--pip-index-url URL`` (repeatable) or ``SETUP_TOOL_PIP_INDEX_URL``
(comma-separated) replace all of them, PyPI included, the way ``--channel`` replaces the conda
channels; a lock made so records them (``setup-tool.pip-indexes`` in its custom metadata) and is
checked and relocked from them until told otherwise. uv searches them in this order and takes
each package from the first index that has it (``--index-strategy first-index``, uv's default,
which keeps a later index from shadowing a package: dependency confusion).

An index is a PEP 503 "simple" URL (``https://pypi.org/simple``, ``https://download.pytorch.org/
whl/cpu``), a ``file://`` URL or a directory. Credentials belong in environment variables
(``https://$USER:$TOKEN@host/simple``, expanded when uv runs, as conda-lock's
``pip-repositories`` are): a literal password would be written into the lockfile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from setup_tool.errors import ChannelUnreachable, UsageError
from setup_tool.lock.channels import (
    REACHABLE_TIMEOUT_S,
    display,
    listed,
    no_answer,
    refuse_empty,
)

ENV_VAR = "SETUP_TOOL_PIP_INDEX_URL"
PYPI = "https://pypi.org/simple"  # PyPI's simple API: https://docs.pypi.org/api/index-api/
UNREACHABLE_HINT = (
    "check the network (or HTTPS_PROXY), or lock from a reachable mirror or a local index with "
    "--pip-index-url URL (or SETUP_TOOL_PIP_INDEX_URL)"
)


@dataclass(frozen=True)
class PipIndexes:
    """The wheel indexes of a lock, highest priority first, and where that choice came from.

    ``kind`` is ``flag``, ``environment``, ``lockfile`` (recorded by the existing lock) or
    ``spec``, as for ``Channels``.
    """

    urls: tuple[str, ...]
    source: str
    kind: str = "spec"

    @property
    def overridden(self) -> bool:
        return self.kind != "spec"

    def describe(self) -> str:
        return f"{', '.join(display(u) for u in self.urls)} (from {self.source})"


def spec_indexes(repositories: Sequence[str], allow_pypi: bool) -> tuple[str, ...]:
    """conda-lock's order: the spec's ``pip-repositories``, then PyPI unless disallowed."""
    urls = [r.rstrip("/") for r in repositories]
    if allow_pypi and PYPI not in urls:
        urls.append(PYPI)
    return tuple(urls)


def resolve_pip_indexes(
    flag: Sequence[str] | None,
    spec: Sequence[str],
    environ: Mapping[str, str] | None = None,
    recorded: PipIndexes | None = None,
) -> PipIndexes:
    """Flag, then ``SETUP_TOOL_PIP_INDEX_URL``, then ``recorded``, then ``spec`` (the list
    ``spec_indexes`` gives). An override equal to the spec's list counts as the spec's."""
    from_spec = PipIndexes(tuple(spec), "envs/*.yml")
    chosen = override_indexes(flag, environ) or recorded or from_spec
    if not chosen.urls:
        raise UsageError(
            "the pip section has no index to lock from (allow-pypi-requests: false and no "
            "pip-repositories)",
            "add `pip-repositories: [URL]` to envs/base.yml, or pass --pip-index-url URL",
        )
    return from_spec if chosen.urls == from_spec.urls else chosen


def override_indexes(
    flag: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> PipIndexes | None:
    """``--pip-index-url``, else ``SETUP_TOOL_PIP_INDEX_URL``, each entry checked (None:
    neither is set). ``lock`` checks them even when no spec has a pip section."""
    environ = os.environ if environ is None else environ
    if flag:
        urls = tuple(normalize(u, "--pip-index-url") for u in flag)
        return PipIndexes(urls, "--pip-index-url", "flag")
    if environ.get(ENV_VAR, "").strip():
        urls = tuple(normalize(u, ENV_VAR) for u in listed(environ[ENV_VAR], ENV_VAR))
        return PipIndexes(urls, ENV_VAR, "environment")
    return None


def recorded_indexes(text: str, lockfile: str) -> PipIndexes | None:
    """The indexes a lockfile records (``setup-tool.pip-indexes``: URLs separated by spaces)."""
    urls = tuple(u for u in text.split() if u)
    return PipIndexes(urls, lockfile, "lockfile") if urls else None


def normalize(text: str, source: str) -> str:
    """An index as uv takes it: an http(s) or file URL without a trailing ``/``."""
    text = refuse_empty(text, source)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        password = parts.password
        if password and not password.startswith("$"):
            raise UsageError(
                f"{source}: {display(text)} holds a password, which the lockfile would record",
                "put it in an environment variable: https://$USER:$TOKEN@host/simple",
            )
        return text.rstrip("/")
    if scheme == "file":
        return text.rstrip("/")
    if scheme and len(scheme) > 1:
        raise UsageError(
            f"{source}: index {text!r} has an unsupported scheme {scheme!r}",
            "use an http(s):// or file:// URL, or a directory",
        )
    return Path(text).expanduser().resolve().as_uri()


def check_reachable(indexes: Sequence[str], timeout: float = REACHABLE_TIMEOUT_S) -> None:
    """Raise ``ChannelUnreachable`` for the first index that gives no answer at all.

    uv retries a refused connection for several seconds and names only the package it was
    fetching; this says which index, within ``timeout`` per connection.
    """
    from urllib.request import url2pathname

    for url in indexes:
        expanded = os.path.expandvars(url)
        parts = urlsplit(expanded)
        if parts.scheme == "file":
            path = Path(url2pathname(parts.path))
            if not path.is_dir():
                what = "is not a directory" if path.exists() else "does not exist"
                raise ChannelUnreachable(
                    f"pip index {display(url)}: {path} {what}",
                    "check the path: a local index is a directory with one folder per "
                    "package (PEP 503); pass it as --pip-index-url DIR or file:///DIR",
                )
            continue
        # Only whether the host answers: without the credentials, which urllib cannot send so.
        host = parts.netloc.rsplit("@", 1)[-1]
        reason = no_answer(urlunsplit((parts.scheme, host, parts.path + "/", "", "")), timeout)
        if reason is not None:
            raise ChannelUnreachable(
                f"cannot reach pip index {display(url)}: {reason}", UNREACHABLE_HINT
            )
