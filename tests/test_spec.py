"""The envs/*.yml specs: the repository's own files, merging, and every kind of bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from setup_tool.errors import SpecError, UsageError
from setup_tool.lock import load_spec
from setup_tool.variants import VARIANT_PLATFORMS, Variant
from setup_tool.virtual_packages import VirtualPackage


def write(project: Path, name: str, text: str) -> Path:
    path = project / "envs" / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.mark.parametrize("variant", list(Variant), ids=lambda v: v.value)
def test_repository_specs_load(project: Path, variant: Variant) -> None:
    spec = load_spec(project, variant)
    assert spec.platforms == VARIANT_PLATFORMS[variant]
    assert spec.channels == ("conda-forge",)
    names = {d.split("=")[0] for d in spec.dependencies}
    assert {"python", "pytorch", "torchvision", "numpy", "matplotlib-base"} <= names


def test_overlay_replaces_base_spec_of_the_same_package(project: Path) -> None:
    spec = load_spec(project, Variant.cuda)
    assert "pytorch=*=cuda*" in spec.dependencies
    assert "pytorch" not in spec.dependencies
    assert "pytorch-gpu" in spec.dependencies


def test_cuda_gets_cuda_virtual_package_and_cpu_none(project: Path) -> None:
    cuda = load_spec(project, Variant.cuda)
    cpu = load_spec(project, Variant.cpu)
    for platform in cuda.platforms:
        assert VirtualPackage("__cuda", "12.9") in cuda.virtual_packages[platform]
    for platform in cpu.platforms:
        assert not any(vp.name == "__cuda" for vp in cpu.virtual_packages[platform])
    # The solve never sees the locking machine: linux gets the glibc baseline, osx the MPS macOS.
    assert VirtualPackage("__glibc", "2.28") in cpu.virtual_packages["linux-64"]
    assert VirtualPackage("__osx", "14.0") in cpu.virtual_packages["osx-arm64"]


def test_cuda_flag_replaces_spec_cuda(project: Path) -> None:
    spec = load_spec(project, Variant.cuda, cuda="13.0")
    assert spec.cuda == "13.0"
    assert VirtualPackage("__cuda", "13.0") in spec.virtual_packages["linux-64"]


@pytest.mark.parametrize("value", ["13", "twelve", "12.9.1"])
def test_cuda_flag_must_be_major_minor(project: Path, value: str) -> None:
    with pytest.raises(UsageError, match="not a CUDA version"):
        load_spec(project, Variant.cuda, cuda=value)


def test_cuda_flag_is_refused_for_cpu(project: Path) -> None:
    with pytest.raises(UsageError, match="cuda variant only"):
        load_spec(project, Variant.cpu, cuda="12.9")


def test_base_virtual_packages_apply_where_they_exist(project: Path) -> None:
    base = (project / "envs" / "base.yml").read_text()
    write(project, "base.yml", base + 'virtual-packages:\n  __glibc: "2.34"\n')
    assert (
        VirtualPackage("__glibc", "2.34")
        in load_spec(project, Variant.cpu).virtual_packages["linux-aarch64"]
    )
    mps = load_spec(project, Variant.mps)  # no __glibc on osx-arm64: ignored there, not an error
    assert not any(vp.name == "__glibc" for vp in mps.virtual_packages["osx-arm64"])


def test_malformed_yaml_names_file_and_line(project: Path) -> None:
    write(
        project,
        "cuda.yml",
        """
        platforms:
          - linux-64
        dependencies:
          - pytorch=*=cuda*
         - pytorch-gpu
        """,
    )
    with pytest.raises(SpecError) as info:
        load_spec(project, Variant.cuda)
    assert info.value.location == "envs/cuda.yml:5"
    assert "malformed YAML" in str(info.value)


def test_unknown_key_lists_valid_keys(project: Path) -> None:
    write(project, "cpu.yml", "platforms: [linux-64]\ndependencies: []\nvariables:\n  A: 1\n")
    with pytest.raises(SpecError) as info:
        load_spec(project, Variant.cpu)
    message = str(info.value)
    assert message.startswith("envs/cpu.yml:3: unknown key 'variables'")
    assert (
        "valid keys: allow-pypi-requests, channels, dependencies, name, pip-repositories, "
        "platforms, virtual-packages"
    ) in message
    assert "\n" not in message


def test_unknown_platform_lists_valid_choices(project: Path) -> None:
    write(project, "cuda.yml", "platforms:\n  - linux-64\n  - osx-arm64\ndependencies: []\n")
    with pytest.raises(SpecError) as info:
        load_spec(project, Variant.cuda)
    assert str(info.value) == (
        "envs/cuda.yml:3: unknown platform 'osx-arm64' for the cuda variant "
        "(valid: linux-64, linux-aarch64)"
    )


def test_unknown_virtual_package_lists_valid_names(project: Path) -> None:
    write(
        project,
        "mps.yml",
        'platforms: [osx-arm64]\ndependencies: []\nvirtual-packages:\n  __gpu: "1"\n',
    )
    with pytest.raises(
        SpecError, match=r"mps.yml:4: unknown virtual package '__gpu' \(valid: __arch"
    ):
        load_spec(project, Variant.mps)


def test_virtual_package_version_must_be_a_version(project: Path) -> None:
    write(
        project,
        "cuda.yml",
        "platforms: [linux-64]\ndependencies: []\nvirtual-packages:\n  __cuda: latest\n",
    )
    with pytest.raises(SpecError, match=r"cuda\.yml:4: __cuda: 'latest' is not a version"):
        load_spec(project, Variant.cuda)


def test_cuda_in_cpu_spec_is_refused(project: Path) -> None:
    write(
        project,
        "cpu.yml",
        'platforms: [linux-64]\ndependencies: []\nvirtual-packages:\n  __cuda: "12.9"\n',
    )
    with pytest.raises(SpecError, match=r"cpu\.yml:4: __cuda is set, but the cpu variant"):
        load_spec(project, Variant.cpu)


def test_cuda_variant_without_cuda_needs_flag(project: Path) -> None:
    write(project, "cuda.yml", "platforms: [linux-64]\ndependencies: []\n")
    with pytest.raises(SpecError, match="needs the driver CUDA version"):
        load_spec(project, Variant.cuda)
    assert load_spec(project, Variant.cuda, cuda="12.9").cuda == "12.9"


def test_platforms_in_base_are_refused(project: Path) -> None:
    base = (project / "envs" / "base.yml").read_text()
    write(project, "base.yml", base + "platforms: [linux-64]\n")
    with pytest.raises(SpecError, match="platforms belong in the variant files"):
        load_spec(project, Variant.cpu)


def test_pip_section_is_read_and_the_variant_file_wins(project: Path) -> None:
    base = (project / "envs" / "base.yml").read_text()
    write(project, "base.yml", base + "  - pip:\n      - Requests[socks]>=2.31\n      - tqdm\n")
    cpu = (project / "envs" / "cpu.yml").read_text()
    write(project, "cpu.yml", cpu + "  - pip:\n      - requests==2.32.3\n")
    spec = load_spec(project, Variant.cpu)
    assert spec.pip == {"requests": "requests==2.32.3", "tqdm": "tqdm"}
    assert "pip:requests" not in spec.dependencies  # conda packages stay conda packages
    assert load_spec(project, Variant.mps).pip["requests"] == "Requests[socks]>=2.31"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("  - npm:\n      - left-pad\n", r"`npm:` sub-lists are not supported \(only `pip:` is\)"),
        ("  - pip:\n      - -e ./src\n", r"pip option '-e' is not supported"),
        ("  - pip:\n      - requests>=>2\n", r"'requests>=>2' is not a valid pip requirement"),
        (
            "  - pip:\n      - bar @ https://example.org/bar-1.0-py3-none-any.whl\n",
            r"'bar @ https://example.org/bar-1.0-py3-none-any.whl': direct URL requirements",
        ),
        ("  - pip: [a]\n  - pip: [b]\n", r"more than one `pip:` item"),
    ],
    ids=["other-manager", "editable", "invalid", "url", "two-pip-items"],
)
def test_bad_pip_items_are_refused_with_line(project: Path, item: str, expected: str) -> None:
    base = (project / "envs" / "base.yml").read_text()
    line = len(base.splitlines()) + 1
    write(project, "base.yml", base + item)
    with pytest.raises(SpecError, match=rf"^envs/base.yml:({line}|{line + 1}): {expected}"):
        load_spec(project, Variant.cpu)


def test_pip_repositories_and_allow_pypi_requests(project: Path) -> None:
    base = (project / "envs" / "base.yml").read_text()
    extra = "pip-repositories:\n  - https://mirror.example/simple\nallow-pypi-requests: false\n"
    write(project, "base.yml", base + extra)
    spec = load_spec(project, Variant.cpu)
    assert spec.pip_repositories == ("https://mirror.example/simple",)
    assert spec.allow_pypi_requests is False
    write(project, "base.yml", base + "allow-pypi-requests: maybe\n")
    with pytest.raises(SpecError, match="`allow-pypi-requests` must be true or false"):
        load_spec(project, Variant.cpu)


def test_invalid_match_spec_is_refused_with_line(project: Path) -> None:
    write(project, "cpu.yml", "platforms: [linux-64]\ndependencies:\n  - pytorch >=>2\n")
    with pytest.raises(SpecError, match=r"cpu\.yml:3: 'pytorch >=>2' is not a valid conda package"):
        load_spec(project, Variant.cpu)


@pytest.mark.parametrize(
    ("text", "line", "value"),
    [
        ("platforms: [linux-64]\ndependencies:\n  - numpy\n  - 42\n", 4, "42"),
        ("platforms: [linux-64]\ndependencies:\n  - true\n", 3, "true"),
        ("platforms: [linux-64]\ndependencies:\n  - pip:\n      - 1.5\n", 4, "1.5"),
        ("platforms: [linux-64]\nchannels: [conda-forge, 12]\ndependencies: []\n", 2, "12"),
    ],
)
def test_a_number_or_boolean_entry_is_refused_with_line(
    project: Path, text: str, line: int, value: str
) -> None:
    """YAML reads ``- 42`` as a number: conda-lock's own parser would fail on it later with
    "'int' object has no attribute 'get'", naming neither the file nor the line."""
    write(project, "cpu.yml", text)
    with pytest.raises(SpecError, match=rf"cpu\.yml:{line}: .*{value}.* is not a string") as info:
        load_spec(project, Variant.cpu)
    assert "quote" in (info.value.hint or "")


def test_missing_overlay_says_where_to_run(project: Path) -> None:
    (project / "envs" / "mps.yml").unlink()
    with pytest.raises(SpecError, match=r"^envs/mps.yml: not found") as info:
        load_spec(project, Variant.mps)
    assert "SETUP_TOOL_PROJECT" in (info.value.hint or "")


def test_overlay_needs_platforms(project: Path) -> None:
    write(project, "cpu.yml", "dependencies: []\n")
    with pytest.raises(SpecError, match="lists no platforms"):
        load_spec(project, Variant.cpu)


def test_overlay_channels_must_extend_base(project: Path) -> None:
    write(project, "cpu.yml", "channels: [bioconda]\nplatforms: [linux-64]\ndependencies: []\n")
    with pytest.raises(SpecError, match=r"do not extend base\.yml's"):
        load_spec(project, Variant.cpu)
    write(
        project,
        "cpu.yml",
        "channels: [mine, conda-forge]\nplatforms: [linux-64]\ndependencies: []\n",
    )
    assert load_spec(project, Variant.cpu).channels == ("mine", "conda-forge")
