"""Real, installable test wheels (the binary distribution format) and their lock entries.

``build_wheel(directory, WheelSpec(...))`` writes
``<name>-<version>[-<build>]-<py>-<abi>-<plat>.whl`` with everything an installer reads: the
payload files, ``<name>-<version>.dist-info/`` with
``METADATA`` (``Requires-Dist`` lines), ``WHEEL`` (``Root-Is-Purelib``, one ``Tag`` line per
tag of the compressed tag set), ``entry_points.txt`` (``console_scripts``) and ``RECORD``
(``path,sha256=<urlsafe-b64, no padding>,size``; ``RECORD`` itself ``,,``), plus files under
``<name>-<version>.data/<scheme>/`` (``scripts``, ``data``, ``headers``, ``purelib``,
``platlib``). pypa ``installer``, pip and uv all install them.

Byte-reproducible: fixed timestamps, sorted entries, fixed compression, so the same spec always
gives the same sha256 (the lock entries tests write stay valid across runs).

Specs:
- https://packaging.python.org/en/latest/specifications/binary-distribution-format/
- https://packaging.python.org/en/latest/specifications/recording-installed-packages/
- https://packaging.python.org/en/latest/specifications/entry-points/
- https://packaging.python.org/en/latest/specifications/core-metadata/
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# zip entries' timestamp (zip cannot store dates before 1980).
ZIP_DATE = (2026, 1, 1, 0, 0, 0)
DATA_SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")


def normalized(name: str) -> str:
    """The distribution name as a wheel file name spells it (``my-pkg.x`` → ``my_pkg_x``)."""
    from packaging.utils import canonicalize_name

    return canonicalize_name(name).replace("-", "_")


@dataclass(frozen=True)
class WheelSpec:
    """One wheel to build.

    ``files`` maps paths inside the wheel's root (purelib or platlib) to content; when empty, a
    module ``<normalized name>/__init__.py`` holding ``__version__`` is written. ``data`` holds
    ``(scheme, path, content)`` for ``<name>-<version>.data/<scheme>/<path>``; ``executables``
    are root paths installed with the executable bit. ``console_scripts`` maps a command name
    to ``module:function``. Tags may be compressed sets (``py2.py3``,
    ``manylinux_2_17_x86_64.manylinux2014_x86_64``).
    """

    name: str
    version: str
    python_tag: str = "py3"
    abi_tag: str = "none"
    platform_tag: str = "any"
    build_tag: str | None = None
    files: tuple[tuple[str, str | bytes], ...] = ()
    data: tuple[tuple[str, str, str | bytes], ...] = ()
    executables: frozenset[str] = frozenset()
    console_scripts: tuple[tuple[str, str], ...] = ()
    gui_scripts: tuple[tuple[str, str], ...] = ()
    requires: tuple[str, ...] = ()  # Requires-Dist values, e.g. "numpy>=1.23"
    requires_python: str | None = None
    root_is_purelib: bool | None = None  # default: true for platform "any"

    @property
    def tags(self) -> str:
        return f"{self.python_tag}-{self.abi_tag}-{self.platform_tag}"

    @property
    def filename(self) -> str:
        build = f"-{self.build_tag}" if self.build_tag else ""
        return f"{normalized(self.name)}-{self.version}{build}-{self.tags}.whl"

    @property
    def dist_info(self) -> str:
        return f"{normalized(self.name)}-{self.version}.dist-info"

    @property
    def data_dir(self) -> str:
        return f"{normalized(self.name)}-{self.version}.data"

    def payload(self) -> tuple[tuple[str, str | bytes], ...]:
        if self.files:
            return self.files
        module = normalized(self.name)
        return ((f"{module}/__init__.py", f'__version__ = "{self.version}"\n'),)


@dataclass(frozen=True)
class BuiltWheel:
    """A wheel file on disk with the hashes a lock records for it."""

    spec: WheelSpec
    path: Path
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()


def _bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _metadata(spec: WheelSpec) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {spec.name}", f"Version: {spec.version}"]
    if spec.requires_python:
        lines.append(f"Requires-Python: {spec.requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in spec.requires]
    return "\n".join(lines) + "\n\n"


def _wheel_file(spec: WheelSpec) -> str:
    from packaging.tags import parse_tag

    purelib = spec.platform_tag == "any" if spec.root_is_purelib is None else spec.root_is_purelib
    lines = [
        "Wheel-Version: 1.0",
        "Generator: setup-tool-tests (tests/wheels.py)",
        f"Root-Is-Purelib: {'true' if purelib else 'false'}",
    ]
    lines += [f"Tag: {tag}" for tag in sorted(str(t) for t in parse_tag(spec.tags))]
    if spec.build_tag:
        lines.append(f"Build: {spec.build_tag}")
    return "\n".join(lines) + "\n"


def _entry_points(spec: WheelSpec) -> str | None:
    sections = []
    for section, scripts in (
        ("console_scripts", spec.console_scripts),
        ("gui_scripts", spec.gui_scripts),
    ):
        if scripts:
            body = "".join(f"{name} = {target}\n" for name, target in scripts)
            sections.append(f"[{section}]\n{body}")
    return "\n".join(sections) if sections else None


def wheel_members(spec: WheelSpec) -> list[tuple[str, bytes, bool]]:
    """(path in the zip, content, executable) of every member, RECORD last, as written."""
    members: list[tuple[str, bytes, bool]] = [
        (path, _bytes(content), path in spec.executables) for path, content in spec.payload()
    ]
    for scheme, path, content in spec.data:
        if scheme not in DATA_SCHEMES:
            raise ValueError(f"unknown wheel data scheme {scheme!r} (one of {DATA_SCHEMES})")
        members.append((f"{spec.data_dir}/{scheme}/{path}", _bytes(content), scheme == "scripts"))
    members.sort()
    meta: list[tuple[str, str]] = [("METADATA", _metadata(spec)), ("WHEEL", _wheel_file(spec))]
    if (entry_points := _entry_points(spec)) is not None:
        meta.append(("entry_points.txt", entry_points))
    members += [(f"{spec.dist_info}/{name}", text.encode(), False) for name, text in sorted(meta)]
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data, _ in members)
    record += f"{spec.dist_info}/RECORD,,\n"
    members.append((f"{spec.dist_info}/RECORD", record.encode(), False))
    return members


def wheel_bytes(spec: WheelSpec) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data, executable in wheel_members(spec):
            info = zipfile.ZipInfo(path, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            # The unix mode in the high 16 bits: what installers read for the executable bit.
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            archive.writestr(info, data, compresslevel=6)
    return buffer.getvalue()


def build_wheel(directory: Path, spec: WheelSpec) -> BuiltWheel:
    """Write ``spec`` as a wheel into ``directory``; returns its path, sha256 and size."""
    directory.mkdir(parents=True, exist_ok=True)
    data = wheel_bytes(spec)
    path = directory / spec.filename
    path.write_bytes(data)
    return BuiltWheel(spec, path, hashlib.sha256(data).hexdigest(), len(data))


def build_wheels(directory: Path, specs: Sequence[WheelSpec]) -> list[BuiltWheel]:
    return [build_wheel(directory, spec) for spec in specs]


def pip_lock_entry(
    wheel: BuiltWheel,
    platform: str,
    *,
    dependencies: Mapping[str, str] | None = None,
    category: str = "main",
    url: str | None = None,
    sha256: str | None = None,
) -> dict[str, object]:
    """A ``manager: pip`` package entry of a conda-lock ``version: 1`` file for ``wheel``.

    ``dependencies`` default to the names of the wheel's ``Requires-Dist`` (the way conda-lock
    writes them: PyPI name → version spec, ``*`` when none); ``url`` / ``sha256`` override the
    wheel's own (a moved or tampered file).
    """
    if dependencies is None:
        from packaging.requirements import Requirement

        dependencies = {}
        for line in wheel.spec.requires:
            requirement = Requirement(line)
            dependencies[requirement.name] = str(requirement.specifier) or "*"
    return {
        "name": wheel.name,
        "version": wheel.version,
        "manager": "pip",
        "platform": platform,
        "dependencies": dict(dependencies),
        "url": url or wheel.url,
        "hash": {"sha256": sha256 or wheel.sha256},
        "category": category,
        "optional": category != "main",
    }


def add_to_lock(
    lockfile: Path, entries: Sequence[Mapping[str, object]], dest: Path | None = None
) -> Path:
    """Append pip ``entries`` to a conda-lock ``version: 1`` file (at ``dest``, or in place)."""
    import yaml

    data = yaml.safe_load(lockfile.read_text())
    data["package"] = [*data["package"], *(dict(entry) for entry in entries)]
    target = dest or lockfile
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target
