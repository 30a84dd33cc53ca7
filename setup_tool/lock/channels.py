"""Which conda channels a lock is solved against, and whether they can be reached.

Precedence is ``--channel`` (repeatable), then ``SETUP_TOOL_CHANNEL`` (comma-separated), then
the channels the existing lockfile records when it was locked from an override (so a lock made
from a mirror is checked and relocked from that mirror without repeating the flag), then the
spec's ``channels`` (conda-forge); the source is reported. An override *replaces* the spec's
channels, as conda-lock's ``--channel`` does; it is meant for mirrors and tests. An override
that equals the spec's channels counts as the spec's. A channel is a
name (``conda-forge``, resolved by py-rattler against ``https://conda.anaconda.org``), a
``file://``, ``http://`` or ``https://`` URL, or a local directory (turned into a ``file://``
URL).

``check_reachable`` checks that each channel answers before the solver is started: py-rattler's
own HTTP client has no connect timeout, so a firewall that drops packets would otherwise hang a
lock for minutes. The check is one ``HEAD`` request bounded by ``REACHABLE_TIMEOUT_S`` per socket
operation;
only a failure to get *any* answer (DNS, refused, timeout) counts as unreachable. HTTP status
codes and TLS problems are left for py-rattler to report, with its own proxy and TLS settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from setup_tool.errors import ChannelUnreachable, UsageError

ENV_VAR = "SETUP_TOOL_CHANNEL"
REACHABLE_TIMEOUT_S = 10.0
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)*$")
CHANNEL_ALIAS = "https://conda.anaconda.org"
UNREACHABLE_HINT = (
    "check the network (or HTTPS_PROXY), or lock against a reachable mirror or a local channel "
    "with --channel URL (or SETUP_TOOL_CHANNEL)"
)


@dataclass(frozen=True)
class Channels:
    """The channels a lock uses, in priority order, and where that choice came from.

    ``kind`` is ``flag`` (``--channel``), ``environment`` (``SETUP_TOOL_CHANNEL``), ``lockfile``
    (recorded by the existing lock) or ``spec``; ``source`` names it for messages.
    """

    urls: tuple[str, ...]
    source: str  # "--channel", "SETUP_TOOL_CHANNEL", the lockfile or the spec file
    kind: str = "spec"

    @property
    def overridden(self) -> bool:
        """Whether these replace the spec's channels (conda-lock's ``--channel``)."""
        return self.kind != "spec"

    def describe(self) -> str:
        return f"{', '.join(display(u, expand=False) for u in self.urls)} (from {self.source})"


def resolve_channels(
    flag: Sequence[str] | None,
    spec_channels: Sequence[str],
    spec_source: str,
    environ: Mapping[str, str] | None = None,
    recorded: Channels | None = None,
) -> Channels:
    """Flag, then ``SETUP_TOOL_CHANNEL``, then ``recorded`` (the existing lock's override),
    then the spec; each entry normalized and validated."""
    environ = os.environ if environ is None else environ
    if not spec_channels and not (flag or environ.get(ENV_VAR, "").strip() or recorded):
        raise UsageError(
            f"{spec_source} lists no channels",
            "add `channels: [conda-forge]` to envs/base.yml, or pass --channel URL",
        )
    from_spec = Channels(tuple(normalize(c, spec_source) for c in spec_channels), spec_source)
    chosen = from_spec
    if flag:
        chosen = Channels(tuple(normalize(c, "--channel") for c in flag), "--channel", "flag")
    elif environ.get(ENV_VAR, "").strip():
        parts = listed(environ[ENV_VAR], ENV_VAR)
        chosen = Channels(tuple(normalize(c, ENV_VAR) for c in parts), ENV_VAR, "environment")
    elif recorded is not None:
        chosen = recorded
    return from_spec if chosen.urls == from_spec.urls else chosen


def recorded_channels(urls: Sequence[str], lockfile: str) -> Channels:
    """The channels a lockfile records, as the choice for relocking and checking it."""
    return Channels(tuple(normalize(u, lockfile) for u in urls), lockfile, "lockfile")


def listed(value: str, source: str) -> list[str]:
    """The entries of a comma-separated variable; one that lists none is an error, not "no
    channels"."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise UsageError(
            f"{source}: {value!r} is empty", f"list entries separated by commas, or unset {source}"
        )
    return parts


def refuse_empty(text: str, source: str) -> str:
    """``text`` stripped; an empty one is an error (``Path("")`` would be the current directory)."""
    text = text.strip()
    if not text:
        raise UsageError(
            f"{source}: an empty value is not a channel or index",
            f"give a name, a directory or a URL, or leave {source} out",
        )
    return text


def normalize(text: str, source: str) -> str:
    """A channel as py-rattler and conda-lock take it: a name or a URL without a trailing /."""
    text = refuse_empty(text, source)
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https", "file"):
        return text.rstrip("/")
    if scheme and len(scheme) > 1:
        raise UsageError(
            f"{source}: channel {text!r} has an unsupported scheme {scheme!r}",
            "use a channel name, a local directory, or a file://, http:// or https:// URL",
        )
    path = Path(text).expanduser()
    if text.startswith((".", "/", "~")) or path.is_dir():
        return path.resolve().as_uri()
    if NAME_PATTERN.match(text):
        return text
    raise UsageError(
        f"{source}: {text!r} is not a channel name, directory or URL",
        "e.g. --channel conda-forge, --channel ./channel or --channel https://mirror/conda-forge",
    )


def channel_url(channel: str) -> str:
    """The URL a channel name stands for (``conda-forge`` → https://conda.anaconda.org/...)."""
    if "://" in channel:
        return channel
    return f"{CHANNEL_ALIAS}/{channel}"


def display(channel: str, *, expand: bool = True) -> str:
    """A channel for messages: passwords and ``/t/<token>/`` path tokens masked; a name is
    followed by the URL it stands for (``conda-forge (https://conda.anaconda.org/...)``)."""
    if "://" not in channel:
        return f"{channel} ({channel_url(channel)})" if expand else channel
    parts = urlsplit(channel)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    path = re.sub(r"/t/[^/]+", "/t/***", parts.path)
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def check_reachable(channels: Sequence[str], timeout: float = REACHABLE_TIMEOUT_S) -> None:
    """Raise ``ChannelUnreachable`` for the first channel that gives no answer at all."""
    for channel in channels:
        url = channel_url(channel)
        scheme = urlsplit(url).scheme
        if scheme == "file":
            _check_directory(channel, url)
        else:
            _check_http(channel, url, timeout)


def _check_directory(channel: str, url: str) -> None:
    from urllib.request import url2pathname

    path = Path(url2pathname(urlsplit(url).path))
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise ChannelUnreachable(
            f"channel {display(channel)}: {path} {what}",
            "check the path: a local channel is a directory with <subdir>/repodata.json "
            "(noarch/repodata.json at least); pass it as --channel DIR or file:///DIR",
        )
    if not any(path.glob("*/repodata.json")):
        raise ChannelUnreachable(
            f"channel {display(channel)} has no repodata.json in any subdir",
            "index it first (`rattler-index fs DIR` or `conda index DIR`), or fix the path",
        )


def _check_http(channel: str, url: str, timeout: float) -> None:
    reason = no_answer(f"{url}/noarch/repodata.json", timeout)
    if reason is not None:
        raise ChannelUnreachable(
            f"cannot reach channel {display(channel)}: {reason}", UNREACHABLE_HINT
        )


def no_answer(url: str, timeout: float = REACHABLE_TIMEOUT_S) -> str | None:
    """Why a ``HEAD url`` got no answer at all (DNS, refused, timeout), or None if it got one.

    Any HTTP status and any TLS failure count as an answer: they are the solver's (or uv's) to
    report, with its own authentication, proxy and certificate settings.
    """
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return None
        return _reason(exc.reason)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ssl.SSLError:
        return None
    except (ConnectionError, OSError) as exc:
        return _reason(exc)


def _reason(reason: object) -> str:
    import socket

    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve (DNS)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "no answer (timed out)"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)
