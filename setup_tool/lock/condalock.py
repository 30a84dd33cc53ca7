"""The boundary with conda-lock: its spec parser, its content hash, its models and its writer.

Everything that makes our lockfiles *conda-lock's* lives here, so the rest of the package
deals in ``EnvSpec`` and py-rattler records:

- ``lock_specification``: conda-lock's own parse of ``envs/base.yml`` + the overlay
  (``make_lock_spec``: selectors, the merge of several ``-f`` files), with the channels
  replaced when ``--channel`` is given. Its per-platform specs are what gets solved.
- ``content_hashes`` / ``hash_is_current``: conda-lock's ``compute_content_hashes`` over a
  virtual-package repodata that holds exactly the spec's virtual packages, i.e. what
  ``conda-lock --virtual-package-spec`` computes for the same packages. ``hash_is_current``
  accepts the older hash forms conda-lock itself accepts (``backwards_compatible_content_hashes``).
- ``build_lockfile`` / ``render``: conda-lock's ``Lockfile`` model and ``write_conda_lock_file``.
  No time, git or input-file metadata is written, so the same spec and repodata give the same
  bytes (a lock's date is its commit's date).
- ``read_lockfile``: ``parse_conda_lock_file``, with its failures turned into one reason.

conda-lock takes about 0.8 s to import, so this module imports it inside functions only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from setup_tool.errors import LockfileInvalid, SetupToolError, SpecError
from setup_tool.lock.spec import EnvSpec
from setup_tool.virtual_packages import VirtualPackage


def lock_specification(spec: EnvSpec, channels: Sequence[str] | None, mapping: Path | None) -> Any:
    """conda-lock's ``LockSpecification`` for the spec's files and platforms.

    ``mapping`` is the conda/PyPI name table (``pypi_names.mapping_file``): conda-lock's parser
    consults it for a ``- pip:`` section and would download its own otherwise. Without a pip
    section it is never read (None: conda-lock's default URL, never fetched).
    """
    from conda_lock.lookup import DEFAULT_MAPPING_URL
    from conda_lock.src_parser import make_lock_spec

    try:
        return make_lock_spec(
            src_files=list(spec.files),
            channel_overrides=list(channels) if channels else None,
            platform_overrides=list(spec.platforms),
            mapping_url=str(mapping) if mapping else DEFAULT_MAPPING_URL,
        )
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise SpecError(
            " + ".join(str(f) for f in spec.files),
            f"conda-lock cannot read the spec: {exc} ({cause})"
            if cause is not exc
            else f"conda-lock cannot read the spec: {exc}",
            hint="fix what it names in the spec files (envs/README.md describes them)",
        ) from None


def with_channels(lock_spec: Any, urls: Sequence[str]) -> Any:
    """``lock_spec`` with its channels replaced (everything else as parsed)."""
    from conda_lock.models.channel import Channel

    return lock_spec.model_copy(update={"channels": [Channel.from_string(u) for u in urls]})


def with_pip_repositories(lock_spec: Any, urls: Sequence[str]) -> Any:
    """``lock_spec`` with its ``pip_repositories`` replaced (``--pip-index-url``)."""
    from conda_lock.models.pip_repository import PipRepository

    repositories = [PipRepository.from_string(u) for u in urls]
    return lock_spec.model_copy(update={"pip_repositories": repositories})


def match_specs(lock_spec: Any, platform: str) -> tuple[str, ...]:
    """The conda match specs conda-lock parsed for ``platform``, as text py-rattler reads."""
    specs = []
    for dep in lock_spec.dependencies[platform]:
        if dep.manager != "conda":
            continue
        text = dep.name
        if dep.build:
            text += f" {dep.version or '*'} {dep.build}"
        elif dep.version:
            text += f" {dep.version}"
        if dep.conda_channel:
            text = f"{dep.conda_channel}::{text}"
        specs.append(text)
    return tuple(specs)


def _virtual_package_repo(
    virtual_packages: Mapping[str, Iterable[VirtualPackage]], base_path: Path
) -> Any:
    from conda_lock.virtual_package import FakeRepoData
    from conda_lock.virtual_package import VirtualPackage as CondaLockVirtualPackage

    repo = FakeRepoData(base_path=base_path)
    for platform, packages in virtual_packages.items():
        for vp in packages:
            # conda-lock writes build "0" as an empty build string (its build number is 0).
            build_string = "" if vp.build == "0" else vp.build
            package = CondaLockVirtualPackage(
                name=vp.name, version=vp.version, build_string=build_string
            )
            repo.add_package(package, subdirs=[platform])
    repo.write()
    return repo


def content_hashes(
    lock_spec: Any, virtual_packages: Mapping[str, Iterable[VirtualPackage]]
) -> dict[str, str]:
    """conda-lock's per-platform content hashes for this spec and these virtual packages."""
    from conda_lock.content_hash import compute_content_hashes

    with tempfile.TemporaryDirectory(prefix="setup-tool-vpr-") as tmp:
        repo = _virtual_package_repo(virtual_packages, Path(tmp))
        return dict(compute_content_hashes(lock_spec, repo))


def current_hashes(
    lock_spec: Any, virtual_packages: Mapping[str, Iterable[VirtualPackage]]
) -> dict[str, set[str]]:
    """Every hash conda-lock would accept as up to date, per platform (older forms included)."""
    from conda_lock.content_hash import backwards_compatible_content_hashes

    with tempfile.TemporaryDirectory(prefix="setup-tool-vpr-") as tmp:
        repo = _virtual_package_repo(virtual_packages, Path(tmp))
        return {
            platform: backwards_compatible_content_hashes(lock_spec, repo, platform)
            for platform in lock_spec.platforms
        }


def _dependencies(depends: Iterable[str]) -> dict[str, str]:
    """A record's ``depends`` as conda-lock writes them: name → version spec, merged per name.

    The same steps as conda-lock's ``conda_solver._reconstruct_fetch_actions``.
    """
    from conda_lock.interfaces.vendored_conda import MatchSpec

    by_name: dict[str, list[Any]] = {}
    for dep in depends:
        spec = MatchSpec(dep)
        by_name.setdefault(spec.name, []).append(spec)
    result = {}
    for name, specs in by_name.items():
        merged = specs[0] if len(specs) == 1 else MatchSpec.merge(specs)[0]
        result[name] = merged.version.spec_str if merged.version is not None else ""
    return result


def locked_dependency(platform: str, record: Any) -> Any:
    """conda-lock's ``LockedDependency`` for one py-rattler ``RepoDataRecord``."""
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency

    name = record.name.normalized
    if record.md5 is None or record.sha256 is None:
        raise SetupToolError(
            f"the channel's repodata has no md5/sha256 for {record.file_name}",
            "a lockfile needs both hashes; use a channel indexed with them (conda-forge has)",
        )
    return LockedDependency(
        name=name,
        version=str(record.version),
        manager="conda",
        platform=platform,
        dependencies=_dependencies(record.depends),
        url=str(record.url),
        hash=HashModel(md5=record.md5.hex(), sha256=record.sha256.hex()),
        categories={"main"},
        build=str(record.build),
    )


def build_lockfile(
    *,
    packages: Sequence[Any],
    lock_spec: Any,
    platforms: Sequence[str],
    hashes: Mapping[str, str],
    sources: Sequence[str],
    custom: Mapping[str, str],
) -> Any:
    """A conda-lock ``Lockfile``: packages already converted, metadata without timestamps."""
    from conda_lock.lockfile.v2prelim.models import Lockfile, LockMeta

    return Lockfile(
        package=list(packages),
        metadata=LockMeta(
            content_hash=dict(hashes),
            channels=list(lock_spec.channels),
            platforms=list(platforms),
            sources=list(sources),
            time_metadata=None,
            git_metadata=None,
            inputs_metadata=None,
            custom_metadata=dict(custom) or None,
        ),
    )


def render(lockfile: Any, header: str) -> bytes:
    """The file's bytes: our header comment, then conda-lock's writer output (without its own
    help text, whose re-solve command would use conda-lock's defaults, __cuda 11.4 included)."""
    from conda_lock.lockfile import write_conda_lock_file

    with tempfile.TemporaryDirectory(prefix="setup-tool-lock-") as tmp:
        path = Path(tmp) / "conda-lock.yml"
        write_conda_lock_file(lockfile, path, metadata_choices=None, include_help_text=False)
        body = path.read_bytes()
    return header.encode() + body


def read_lockfile(path: Path) -> Any:
    """``parse_conda_lock_file(path)``; an unreadable file raises ``LockfileInvalid``."""
    from conda_lock.lockfile import parse_conda_lock_file

    try:
        return parse_conda_lock_file(path)
    except FileNotFoundError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LockfileInvalid(
            f"{path} is not a readable conda-lock file: {first}",
            "relock it: setup-tool lock (it is overwritten only after a successful solve)",
        ) from None


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The ``metadata`` mapping of a conda-lock file, read without its package list; None
    when the file is missing or unreadable (``check_lock`` then reports it in full).

    Cheap on purpose: ``lock``, ``check`` and ``env`` read it for every variant to learn the
    channels a lock was made from, and a real lockfile's package list is most of its bytes.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    # conda-lock's writer puts `metadata:` before `package:`, both at column 0.
    head, _, _ = text.partition("\npackage:")
    try:
        document = yaml.load(head, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    metadata = document.get("metadata") if isinstance(document, dict) else None
    return metadata if isinstance(metadata, dict) else None


def pip_locked_dependency(platform: str, wheel: Any, dependencies: Mapping[str, str]) -> Any:
    """conda-lock's ``LockedDependency`` for one resolved wheel (``uv.ResolvedWheel``), with the
    fields conda-lock's own pip solve writes (``pypi_solver.get_requirements``)."""
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency

    return LockedDependency(
        name=wheel.name,
        version=wheel.version,
        manager="pip",
        platform=platform,
        dependencies=dict(dependencies),
        url=wheel.url,
        hash=HashModel(sha256=wheel.sha256),
        categories={"main"},
    )
