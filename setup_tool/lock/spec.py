"""The environment specs in ``envs/``: loading, validating and merging base.yml + <variant>.yml.

A variant's spec is ``envs/base.yml`` plus its overlay ``envs/<variant>.yml``, combined the way
conda-lock combines several ``-f`` files: a package named in both takes the overlay's spec,
channels come from base.yml, platforms from the overlay. So ``conda-lock -f envs/base.yml -f
envs/cuda.yml`` reads the same environment, and the content hash (``condalock.py``) is the one
conda-lock computes. Each file is conda's environment.yml form with these keys:

    name                 optional, informational
    channels             base.yml; ``--channel`` / ``SETUP_TOOL_CHANNEL`` replace them
    dependencies         conda match specs (``pytorch=*=cuda*``); required, may be ``[]``;
                         one ``- pip: [...]`` item holds PEP 508 requirements, locked from
                         wheel indexes (``pip.py``), as conda-lock reads them
    pip-repositories     conda-lock's key: extra PEP 503 indexes, searched before PyPI
                         (``--pip-index-url`` / ``SETUP_TOOL_PIP_INDEX_URL`` replace all)
    allow-pypi-requests  conda-lock's key: ``false`` leaves PyPI out (default ``true``)
    platforms            overlays only: the conda subdirs the variant is locked for
    virtual-packages     setup-tool's own key (conda-lock ignores it): ``__cuda: "12.9"``,
                         ``__glibc: "2.28"``, ``__osx: "14.0"``; overrides the baseline in
                         ``setup_tool.virtual_packages`` for every platform it applies to

Anything else is a ``SpecError`` naming the file and line, with the valid choices. Loading is
pure (no solver, no network); ``load_spec`` is what ``lock``, ``lock --check`` and ``env`` call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setup_tool.errors import SpecError, UsageError
from setup_tool.paths import shown_path, spec_paths
from setup_tool.variants import VARIANT_PLATFORMS, Variant
from setup_tool.virtual_packages import BASELINE, VirtualPackage, baseline

SPEC_KEYS: tuple[str, ...] = (
    "allow-pypi-requests",
    "channels",
    "dependencies",
    "name",
    "pip-repositories",
    "platforms",
    "virtual-packages",
)
CUDA_PATTERN = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class SpecFile:
    """One parsed ``envs/*.yml`` file. ``lines`` maps each dependency to its line number."""

    path: Path
    channels: tuple[str, ...]
    dependencies: tuple[str, ...]
    platforms: tuple[str, ...]
    virtual_packages: Mapping[str, str]
    lines: Mapping[str, int]
    pip: tuple[str, ...] = ()  # PEP 508 requirements of the `- pip:` item
    pip_repositories: tuple[str, ...] = ()
    allow_pypi_requests: bool | None = None  # None: not set in this file


@dataclass(frozen=True)
class EnvSpec:
    """A variant's merged spec, and the virtual packages each of its platforms is solved with.

    ``dependencies`` is the merged list for display; the per-platform specs that are solved
    and hashed come from conda-lock's parser (``condalock.lock_specification``), which also
    applies ``# [linux]``-style selectors. ``pip`` maps each pip requirement's normalized name
    to its text (the variant file's wins, as for conda packages); which of them apply to a
    platform is conda-lock's parse too.
    """

    variant: Variant
    files: tuple[Path, ...]
    channels: tuple[str, ...]
    platforms: tuple[str, ...]
    dependencies: tuple[str, ...]
    virtual_packages: Mapping[str, tuple[VirtualPackage, ...]]
    cuda: str | None
    pip: Mapping[str, str] = field(default_factory=dict)
    pip_repositories: tuple[str, ...] = ()
    allow_pypi_requests: bool = True

    def virtual_packages_text(self, platform: str) -> str:
        """``__archspec=1=x86_64 __cuda=12.9=0 ...`` for progress lines and the lock header."""
        return " ".join(str(vp) for vp in self.virtual_packages[platform])


def load_spec(root: Path, variant: Variant, *, cuda: str | None = None) -> EnvSpec:
    """Read, validate and merge ``envs/base.yml`` and ``envs/<variant>.yml`` under ``root``.

    ``cuda`` (``--cuda X.Y``) replaces the overlay's ``__cuda``; it is an error for the
    variants that are solved without CUDA.
    """
    base_path, overlay_path = spec_paths(root, variant)
    base = read_spec_file(base_path, root=root, overlay=False, variant=variant)
    overlay = read_spec_file(overlay_path, root=root, overlay=True, variant=variant)

    _check_cuda_flag(cuda, variant)
    overrides = {**base.virtual_packages, **overlay.virtual_packages}
    cuda = _target_cuda(cuda, overrides.pop("__cuda", None), variant, base, overlay, root)
    packages = {
        platform: _platform_virtual_packages(platform, overrides, cuda)
        for platform in overlay.platforms
    }
    _check_overrides_apply(overlay, root)

    merged: dict[str, str] = {}
    for dep in (*base.dependencies, *overlay.dependencies):
        merged[_package_name(dep)] = dep
    pip = {_pip_name(r): r for r in (*base.pip, *overlay.pip)}
    allow = [f.allow_pypi_requests for f in (base, overlay) if f.allow_pypi_requests is not None]
    return EnvSpec(
        variant=variant,
        files=(base_path, overlay_path),
        channels=_merge_channels(base, overlay, root),
        platforms=overlay.platforms,
        dependencies=tuple(merged.values()),
        virtual_packages=packages,
        cuda=cuda,
        pip=pip,
        pip_repositories=tuple(dict.fromkeys((*overlay.pip_repositories, *base.pip_repositories))),
        allow_pypi_requests=all(allow),
    )


def _check_cuda_flag(cuda: str | None, variant: Variant) -> None:
    if cuda is None:
        return
    if not CUDA_PATTERN.match(cuda):
        raise UsageError(f"--cuda {cuda!r} is not a CUDA version", "give MAJOR.MINOR, e.g. 12.9")
    if variant is not Variant.cuda:
        raise UsageError(
            f"--cuda applies to the cuda variant only, not {variant.value}",
            f"drop --cuda, or lock with --variant cuda; {variant.value} is solved without "
            "__cuda so that no CUDA build can enter it",
        )


def _target_cuda(
    cuda: str | None,
    spec_cuda: str | None,
    variant: Variant,
    base: SpecFile,
    overlay: SpecFile,
    root: Path,
) -> str | None:
    """The driver CUDA the cuda variant is solved for (``--cuda``, else the spec's ``__cuda``);
    None for the others, which must not set ``__cuda`` at all."""
    if spec_cuda is not None and variant is not Variant.cuda:
        where = overlay if "__cuda" in overlay.virtual_packages else base
        raise SpecError(
            shown_path(where.path, root),
            f"__cuda is set, but the {variant.value} variant is solved without it",
            line=where.lines.get("virtual-packages:__cuda"),
            hint="remove __cuda: it would let CUDA builds into a lock that must not have them",
        )
    if variant is not Variant.cuda:
        return cuda
    cuda = cuda or (spec_cuda.split(" ")[0] if spec_cuda else None)
    if cuda is None:
        raise SpecError(
            shown_path(overlay.path, root),
            "the cuda variant needs the driver CUDA version it targets",
            hint='add `virtual-packages: {__cuda: "12.9"}`, or pass --cuda 12.9',
        )
    return cuda


def read_spec_file(path: Path, *, root: Path, overlay: bool, variant: Variant) -> SpecFile:
    """Parse and validate one spec file; every problem is a ``SpecError`` with file and line."""
    shown = shown_path(path, root)
    fields, lines = _top_level_keys(_read_document(path, shown), shown, overlay=overlay)
    if "dependencies" not in fields:
        raise SpecError(shown, "has no `dependencies` list", hint="add `dependencies: []`")
    conda_node, pip_node = _split_dependencies(fields["dependencies"], shown)
    dependencies = _string_list(conda_node, shown, "dependencies", lines)
    for dep, line in zip(dependencies, _item_lines(conda_node), strict=True):
        _check_match_spec(dep, shown, line)
        lines[f"dependency:{_package_name(dep)}"] = line
    pip = _pip_requirements(pip_node, shown, lines)
    channels = _string_list(fields.get("channels"), shown, "channels", lines)
    platforms = _platforms(fields.get("platforms"), shown, lines, overlay=overlay, variant=variant)
    virtual = _virtual_packages(fields.get("virtual-packages"), shown, lines)
    repositories = _string_list(fields.get("pip-repositories"), shown, "pip-repositories", lines)
    allow = _boolean(fields.get("allow-pypi-requests"), shown, "allow-pypi-requests")
    return SpecFile(
        path, channels, dependencies, platforms, virtual, lines, pip, repositories, allow
    )


def _read_document(path: Path, shown: str) -> Any:
    """The file's YAML node tree (a mapping), or a ``SpecError`` saying why not."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            shown,
            "not found",
            hint=f"run from the project (the folder holding envs/), or set SETUP_TOOL_PROJECT; "
            f"envs/README.md describes {path.name}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(
            shown, f"cannot be read: {exc}", hint="make it a readable UTF-8 text file"
        ) from None
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(
            shown,
            f"malformed YAML: {problem}",
            line=mark.line + 1 if mark else None,
            hint="fix the YAML syntax (indentation, quotes, `- ` before each list item)",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(
            shown,
            f"malformed YAML: {exc}",
            hint="fix the YAML syntax (indentation, quotes, `- ` before each list item)",
        ) from None
    if document is None:
        raise SpecError(shown, "is empty", hint="it needs at least `dependencies: []`")
    if not isinstance(document, yaml.MappingNode):
        raise SpecError(
            shown,
            "must be a mapping of keys (channels, dependencies, ...)",
            line=document.start_mark.line + 1,
            hint="write one `key:` per line at the top level, e.g. `dependencies:`",
        )
    return document


def _top_level_keys(
    document: Any, shown: str, *, overlay: bool
) -> tuple[dict[str, Any], dict[str, int]]:
    """The value node and line of each top-level key; unknown or misplaced keys are errors."""
    import yaml

    fields: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in document.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        line = key_node.start_mark.line + 1
        if key not in SPEC_KEYS:
            raise SpecError(
                shown,
                f"unknown key {key!r} (valid keys: {', '.join(SPEC_KEYS)})",
                line=line,
                hint="envs/README.md describes each key",
            )
        if key == "platforms" and not overlay:
            raise SpecError(
                shown,
                "platforms belong in the variant files (cuda.yml, mps.yml, cpu.yml)",
                line=line,
                hint="move the list to each variant file",
            )
        fields[key] = value_node
        lines[key] = line
    return fields, lines


def _platforms(
    node: Any, shown: str, lines: dict[str, int], *, overlay: bool, variant: Variant
) -> tuple[str, ...]:
    """The ``platforms`` list, each one valid for the variant; an overlay must have one."""
    platforms = _string_list(node, shown, "platforms", lines)
    valid_platforms = VARIANT_PLATFORMS[variant]
    for platform, line in zip(platforms, _item_lines(node), strict=True):
        if platform not in valid_platforms:
            raise SpecError(
                shown,
                f"unknown platform {platform!r} for the {variant.value} variant "
                f"(valid: {', '.join(valid_platforms)})",
                line=line,
                hint="list only those; envs/README.md says which platforms each variant has",
            )
    if overlay and not platforms:
        raise SpecError(
            shown,
            "lists no platforms",
            line=lines.get("platforms"),
            hint=f"add `platforms: [{', '.join(valid_platforms)}]`",
        )
    return platforms


# --- helpers -------------------------------------------------------------------------------------


_YAML_STRING = "tag:yaml.org,2002:str"  # what a plain or quoted text scalar resolves to


def _string_list(node: Any, shown: str, key: str, lines: dict[str, int]) -> tuple[str, ...]:
    import yaml

    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise SpecError(
            shown,
            f"`{key}` must be a list",
            line=node.start_mark.line + 1,
            hint=f"write `{key}:` then one `- entry` per line, or `{key}: [a, b]`",
        )
    items = []
    for item in node.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
            raise SpecError(
                shown,
                f"every `{key}` entry must be a plain string",
                line=line,
                hint="write each entry as `- text` (quoted if it holds `: ` or ` #`)",
            )
        if item.tag != _YAML_STRING:  # conda-lock's parser would fail on it, naming no line
            kind = item.tag.rsplit(":", 1)[-1]
            raise SpecError(
                shown,
                f"the `{key}` entry {item.value} is not a string (YAML reads it as {kind})",
                line=line,
                hint=f'quote it (`- "{item.value}"`) if it is meant as text',
            )
        items.append(str(item.value).strip())
    return tuple(items)


def _split_dependencies(node: Any, shown: str) -> tuple[Any, Any]:
    """``dependencies`` without its ``- pip:`` item, and that item's list (or None).

    conda's environment.yml allows one mapping item, ``pip``, in the list; any other mapping
    (``- conda:``, ``- npm:``) is an error naming its line.
    """
    import yaml

    if not isinstance(node, yaml.SequenceNode):
        return node, None
    conda, pip = [], None
    for item in node.value:
        if not isinstance(item, yaml.MappingNode):
            conda.append(item)
            continue
        line = item.start_mark.line + 1
        names = [str(k.value) for k, _ in item.value]
        if names != ["pip"]:
            raise SpecError(
                shown,
                f"`{', '.join(names)}:` sub-lists are not supported (only `pip:` is)",
                line=line,
                hint="list conda packages directly and PyPI packages under `- pip:`",
            )
        if pip is not None:
            raise SpecError(shown, "more than one `pip:` item", line=line, hint="merge them")
        pip = item.value[0][1]
    return yaml.SequenceNode(node.tag, conda, node.start_mark, node.end_mark), pip


def _pip_requirements(node: Any, shown: str, lines: dict[str, int]) -> tuple[str, ...]:
    """The ``- pip:`` requirements, each a PEP 508 requirement on a package from an index."""
    from packaging.requirements import InvalidRequirement, Requirement

    texts = _string_list(node, shown, "pip", lines)
    for text, line in zip(texts, _item_lines(node), strict=True):
        if text.startswith("-"):
            raise SpecError(
                shown,
                f"pip option {text.split()[0]!r} is not supported in a lock",
                line=line,
                hint="list requirements only (`name`, `name>=1.2`); indexes go in "
                "`pip-repositories` or --pip-index-url",
            )
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise SpecError(
                shown,
                f"{text!r} is not a valid pip requirement: {exc}",
                line=line,
                hint="write `name`, `name>=1.2`, `name[extra]==1.2` or "
                "`name; sys_platform == 'linux'`",
            ) from None
        if requirement.url:
            raise SpecError(
                shown,
                f"{text!r}: direct URL requirements are not locked",
                line=line,
                hint="put the wheel in an index (a directory served as PEP 503 works) and "
                "require it by name",
            )
        lines[f"pip:{_pip_name(text)}"] = line
    return texts


def _pip_name(requirement: str) -> str:
    """A pip requirement's normalized name (``Typing_Extensions>=4`` → ``typing-extensions``)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(requirement).name)


def _boolean(node: Any, shown: str, key: str) -> bool | None:
    import yaml

    if node is None:
        return None
    value = str(node.value).lower() if isinstance(node, yaml.ScalarNode) else ""
    if value not in ("true", "false"):
        raise SpecError(
            shown,
            f"`{key}` must be true or false",
            line=node.start_mark.line + 1,
            hint=f"write `{key}: true` or `{key}: false`",
        )
    return value == "true"


def _item_lines(node: Any) -> list[int]:
    import yaml

    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def _check_match_spec(text: str, shown: str, line: int) -> None:
    from rattler import MatchSpec

    try:
        MatchSpec(text)
    except Exception as exc:
        raise SpecError(
            shown,
            f"{text!r} is not a valid conda package spec: {str(exc).splitlines()[0]}",
            line=line,
            hint="write `name`, `name=1.2`, `name>=1.2,<2` or `name=*=build*`",
        ) from None


def _package_name(spec: str) -> str:
    """The package name of a match spec (``pytorch=*=cuda*`` → ``pytorch``)."""
    name = re.split(r"[\s=<>!~\[]", spec.rsplit("::", maxsplit=1)[-1], maxsplit=1)[0]
    return name.strip().lower()


def _virtual_packages(node: Any, shown: str, lines: dict[str, int]) -> dict[str, str]:
    import yaml

    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(
            shown,
            "`virtual-packages` must be a mapping",
            line=node.start_mark.line + 1,
            hint='write `virtual-packages:` then one `  __name: "version"` per line, e.g. '
            '`  __cuda: "12.9"`',
        )
    known = sorted({"__cuda", *(name for table in BASELINE.values() for name in table)})
    result = {}
    for key_node, value_node in node.value:
        name, line = str(key_node.value), key_node.start_mark.line + 1
        if name not in known:
            raise SpecError(
                shown,
                f"unknown virtual package {name!r} (valid: {', '.join(known)})",
                line=line,
                hint="use one of those names; envs/README.md describes virtual-packages",
            )
        value = str(value_node.value).strip() if isinstance(value_node, yaml.ScalarNode) else ""
        version = value.split(" ")[0]
        if not value or not re.match(r"^\d+(\.\d+)*$", version):
            raise SpecError(
                shown,
                f"{name}: {value!r} is not a version",
                line=line,
                hint=f'write it quoted, e.g. `{name}: "12.9"`',
            )
        result[name] = value
        lines[f"virtual-packages:{name}"] = line
    return result


def _platform_virtual_packages(
    platform: str, overrides: Mapping[str, str], cuda: str | None
) -> tuple[VirtualPackage, ...]:
    packages = {vp.name: vp for vp in baseline(platform, cuda=cuda)}
    for name, value in overrides.items():
        if name in packages:
            version, _, build = value.partition(" ")
            packages[name] = VirtualPackage(name, version, build or "0")
    return tuple(sorted(packages.values()))


def _check_overrides_apply(overlay: SpecFile, root: Path) -> None:
    """An overlay's virtual package that none of its platforms has is a typo or a mistake.

    (base.yml's apply to whichever variants have them: ``__glibc`` to cuda and cpu, not mps.)
    """
    for name in overlay.virtual_packages:
        if name != "__cuda" and not any(name in BASELINE[p] for p in overlay.platforms):
            raise SpecError(
                shown_path(overlay.path, root),
                f"{name} does not apply to {', '.join(overlay.platforms)}",
                line=overlay.lines.get(f"virtual-packages:{name}"),
                hint=f"remove {name}, or move it to the variant file whose platforms have it",
            )


def _merge_channels(base: SpecFile, overlay: SpecFile, root: Path) -> tuple[str, ...]:
    """conda-lock's rule: the longest list wins, and every other must be a suffix of it."""
    lists = [c for c in (base.channels, overlay.channels) if c]
    if not lists:
        return ()
    longest = max(lists, key=len)
    for channels in lists:
        if tuple(longest[-len(channels) :]) != channels:
            raise SpecError(
                shown_path(overlay.path, root),
                f"channels {list(overlay.channels)} do not extend base.yml's {list(base.channels)}",
                line=overlay.lines.get("channels"),
                hint="list extra channels before base.yml's, or drop `channels` from the overlay",
            )
    return longest
