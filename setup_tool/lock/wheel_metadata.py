"""A locked wheel's dependencies, as conda-lock writes them (PyPI name → version spec).

uv's ``pylock.toml`` names the wheels but not the edges between them, and a conda-lock entry
records them (``dependencies``; installers use them to check a lock is complete). They come
from the wheel's own core metadata (``Requires-Dist``), read without installing anything:

- a ``file://`` wheel: the ``<wheel>.metadata`` file beside it if the index has one, else
  the wheel's ``*.dist-info/METADATA`` member;
- an http(s) wheel: the index's ``<wheel URL>.metadata`` file (PEP 658, named by PEP 714; PyPI
  serves it for every wheel, pypi/warehouse#13649, and download.pytorch.org for its recent
  ones, pytorch/test-infra#6116), and when there is none, the wheel itself, checked against
  the sha256 the lock records before it is read.

Each ``Requires-Dist`` whose marker holds on the target platform (``PipTarget.markers``, with
the extras asked for) becomes ``name: specifier`` (``*`` without one, as conda-lock writes it).
"""

from __future__ import annotations

import email.parser
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from setup_tool.errors import ChannelUnreachable, LockfileInvalid
from setup_tool.lock.channels import display
from setup_tool.lock.pip_indexes import UNREACHABLE_HINT

FETCH_TIMEOUT_S = 60.0


def requires_dist(url: str, sha256: str) -> tuple[str, ...]:
    """The ``Requires-Dist`` values of the wheel at ``url``."""
    parts = urlsplit(os.path.expandvars(url))
    if parts.scheme == "file":
        path = Path(urllib.request.url2pathname(parts.path))
        beside = path.with_name(path.name + ".metadata")  # a local index's PEP 658 file
        if beside.is_file():
            return _from_metadata(beside.read_text(encoding="utf-8", errors="replace"))
        return _from_metadata(_metadata_in_wheel(path))
    try:
        return _from_metadata(_fetch(f"{url}.metadata"))
    except urllib.error.HTTPError as exc:
        if exc.code not in (403, 404):
            raise _unreachable(url, f"HTTP {exc.code}") from None
    return _from_metadata(_download_metadata(url, sha256))


def dependencies(
    requires: Iterable[str], markers: Mapping[str, str], extras: Iterable[str] = ()
) -> dict[str, str]:
    """conda-lock's ``dependencies`` of a pip entry: the requirements that apply on the target."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    result: dict[str, str] = {}
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({**markers, "extra": extra}) for extra in ("", *extras)
        ):
            continue
        name = str(canonicalize_name(requirement.name))
        spec = str(requirement.specifier) or "*"
        result[name] = (
            spec if name not in result or result[name] == "*" else f"{result[name]},{spec}"
        )
    return dict(sorted(result.items()))


def requested_extras(requires: Iterable[str], markers: Mapping[str, str]) -> dict[str, set[str]]:
    """The extras these requirements ask of other packages (``foo[bar]`` → ``{"foo": {"bar"}}``)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted: dict[str, set[str]] = {}
    for text in requires:
        requirement = Requirement(text)
        if requirement.extras and (
            requirement.marker is None or requirement.marker.evaluate(dict(markers))
        ):
            wanted.setdefault(str(canonicalize_name(requirement.name)), set()).update(
                requirement.extras
            )
    return wanted


def _from_metadata(text: str) -> tuple[str, ...]:
    message = email.parser.Parser().parsestr(text, headersonly=True)
    return tuple(message.get_all("Requires-Dist") or ())


def _metadata_in_wheel(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [
                n
                for n in archive.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if not names:
                raise LockfileInvalid(
                    f"{path.name} has no .dist-info/METADATA",
                    "the index holds a broken wheel; rebuild or re-upload it",
                )
            return archive.read(names[0]).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile) as exc:
        raise LockfileInvalid(
            f"cannot read the wheel {path}: {exc}",
            "the index holds a broken wheel; rebuild or re-upload it",
        ) from None


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(_request(url), timeout=FETCH_TIMEOUT_S) as reply:
            return bytes(reply.read()).decode("utf-8", errors="replace")
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(url, str(getattr(exc, "reason", exc))) from None


def _download_metadata(url: str, sha256: str) -> str:
    """The whole wheel into a temporary file, its hash checked, then its METADATA."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="setup-tool-wheel-") as tmp:
        path = Path(tmp) / unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        try:
            with (
                urllib.request.urlopen(_request(url), timeout=FETCH_TIMEOUT_S) as reply,
                path.open("wb") as out,
            ):
                while chunk := reply.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as exc:
            raise _unreachable(url, str(getattr(exc, "reason", exc))) from None
        if digest.hexdigest() != sha256:
            raise LockfileInvalid(
                f"{display(url)} does not have the sha256 its index lists ({sha256})",
                "the index or a proxy changed the file; relock when it is fixed",
            )
        return _metadata_in_wheel(path)


def _request(url: str) -> urllib.request.Request:
    """A GET for ``url``, with the URL's ``user:password`` (environment variables expanded) sent
    as HTTP basic auth, which urllib does not do by itself."""
    import base64

    parts = urlsplit(os.path.expandvars(url))
    host = parts.netloc.rsplit("@", 1)[-1]
    request = urllib.request.Request(parts._replace(netloc=host).geturl())
    if parts.username is not None:
        token = base64.b64encode(
            f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        )
        request.add_header("Authorization", f"Basic {token.decode()}")
    return request


def _unreachable(url: str, reason: str) -> ChannelUnreachable:
    return ChannelUnreachable(f"cannot read {display(url)}: {reason}", UNREACHABLE_HINT)
