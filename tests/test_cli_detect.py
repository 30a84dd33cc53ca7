"""``setup-tool detect`` through the CLI: output, JSON schema, exit codes, bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import machines
import pytest
from conftest import Cli

from setup_tool.detect import nvidia
from setup_tool.detect.facts import Platform

DATA = Path(__file__).parent / "data"

PLATFORM_KEYS = {
    "os", "machine", "subdir", "python", "macos", "linux", "nvidia", "cuda_visible_devices",
    "cpu", "conda_executables", "sources", "unknown",
}  # fmt: skip


def test_json_schema(cli: Cli) -> None:
    data = json.loads(cli.ok("detect", "--json").stdout)
    assert data["schema_version"] == 1
    assert set(data["platform"]) == PLATFORM_KEYS
    assert data["target"]["variant"] in {"cuda", "mps", "cpu"}
    assert data["target"]["variant_source"] == "detected"
    for vp in data["target"]["virtual_packages"]:
        assert set(vp) == {"name", "version", "build"}
        assert vp["name"].startswith("__")


def test_table_shows_the_decision_and_sources(cli: Cli) -> None:
    out = cli.ok("detect", "--sources", "--variant", "cpu").stdout
    assert "Variant" in out
    assert "cpu (from --variant)" in out
    assert "platform.system()" in out or "platform.machine()" in out


def test_env_variable_override_is_shown_with_its_source(cli: Cli) -> None:
    out = cli.ok("detect", "--json", env={"SETUP_TOOL_VARIANT": "mps"}).stdout
    target = json.loads(out)["target"]
    assert target["variant"] == "mps"
    assert target["variant_source"] == "SETUP_TOOL_VARIANT"


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        pytest.param(["--variant", "rocm"], {}, "'auto', 'cuda', 'mps', 'cpu'", id="bad-flag"),
        pytest.param([], {"SETUP_TOOL_VARIANT": "rocm"}, "auto, cuda, mps, cpu", id="bad-env"),
        pytest.param([], {"CONDA_OVERRIDE_CUDA": "abc"}, "not a CUDA version", id="bad-cuda"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    cli: Cli, args: list[str], env: dict[str, str], needle: str
) -> None:
    result = cli("detect", *args, env=env)
    assert result.exit_code == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert needle in error_lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "platform", [machines.WIN64, machines.LINUX_PPC64LE], ids=["win-64", "linux-ppc64le"]
)
def test_unsupported_platform_reports_facts_and_exits_3(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, platform: Platform
) -> None:
    monkeypatch.setattr("setup_tool.detect.probe.probe", lambda environ=None: platform)
    result = cli("detect", "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["target"]["variant"] == "unsupported"
    assert data["platform"]["subdir"] == platform.subdir
    table = cli("detect")
    assert table.exit_code == 3
    assert "unsupported platform" in table.stderr


def _fake_nvidia_smi(directory: Path, query_file: str, header_file: str) -> None:
    """An nvidia-smi < 510 printing captured outputs: it rejects the compute_cap field (exit 2),
    answers the older query with the CSV, and plain ``nvidia-smi`` with the header."""
    script = directory / "nvidia-smi"
    error = DATA / "nvidia-smi-470-query-compute-cap-error.txt"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"query, header, error = {str(DATA / query_file)!r}, {str(DATA / header_file)!r}, "
        f"{str(error)!r}\n"
        "args = ' '.join(sys.argv[1:])\n"
        "if 'compute_cap' in args:\n"
        "    print(open(error).read(), end=''); sys.exit(2)\n"
        "print(open(query if '--query-gpu' in args else header).read(), end='')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_old_driver_through_a_real_nvidia_smi_gives_cpu_with_the_fix(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """End to end: PATH has an nvidia-smi printing a 470 driver's output; NVML is absent."""
    _fake_nvidia_smi(tmp_path, "nvidia-smi-470-query-old-fields.csv", "nvidia-smi-470-t4.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(nvidia, "read_nvml", lambda load=None: (None, "NVML: disabled in test"))
    monkeypatch.setattr(nvidia, "SYS_DRIVER_VERSION", tmp_path / "absent")
    monkeypatch.setattr(nvidia, "PROC_DRIVER_VERSION", tmp_path / "absent")
    data = json.loads(cli.ok("detect", "--json").stdout)
    assert data["platform"]["nvidia"]["driver_version"] == "470.82.01"
    assert data["platform"]["nvidia"]["cuda_version"] == "11.4"
    assert data["platform"]["sources"]["nvidia.gpus"] == "nvidia-smi"
    assert data["target"]["variant"] == "cpu"
    assert "525.60.13" in data["target"]["reason"]
    assert data["target"]["cuda"]["rule"] == "driver-major-too-old"


def _fake_current_nvidia_smi(
    directory: Path,
    query_file: str = "nvidia-smi-query-h200.csv",
    header_file: str = "nvidia-smi-h200.txt",
) -> None:
    """An nvidia-smi (510 or newer) printing recorded outputs: by default what an NVIDIA H200
    machine printed (tests/data/README.md)."""
    script = directory / "nvidia-smi"
    query, header = DATA / query_file, DATA / header_file
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"query, header = {str(query)!r}, {str(header)!r}\n"
        "args = ' '.join(sys.argv[1:])\n"
        "print(open(query if '--query-gpu' in args else header).read(), end='')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_h200_through_nvidia_smi_and_driver_file_gives_cuda_13(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The H200's real outputs with NVML unavailable: the fallback sources decide alone."""
    _fake_current_nvidia_smi(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(nvidia, "read_nvml", lambda load=None: (None, "NVML: disabled in test"))
    monkeypatch.setattr(nvidia, "SYS_DRIVER_VERSION", DATA / "sys-module-nvidia-version-h200.txt")
    data = json.loads(cli.ok("detect", "--json").stdout)
    platform, target = data["platform"], data["target"]
    assert platform["nvidia"]["driver_version"] == "580.159.04"
    assert platform["sources"]["nvidia.driver_version"] == str(
        DATA / "sys-module-nvidia-version-h200.txt"
    )
    assert platform["nvidia"]["gpus"][0]["compute_capability"] == "9.0"
    assert target["variant"] == "cuda"
    assert (target["cuda"]["build"], target["cuda"]["driver"]) == ("13.0", "13.0")
    assert target["cuda"]["source"] == "nvidia-smi"
    assert target["cuda"]["rule"] == "driver-cuda-at-least-build"


def test_a_550_driver_through_nvidia_smi_gives_cuda_12_9_with_a_warning(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A 550-series driver (CUDA 12.4), found on many clusters, runs the cuda129 build."""
    _fake_current_nvidia_smi(tmp_path, "nvidia-smi-query-550-a100.csv", "nvidia-smi-550-a100.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(nvidia, "read_nvml", lambda load=None: (None, "NVML: disabled in test"))
    monkeypatch.setattr(nvidia, "SYS_DRIVER_VERSION", tmp_path / "absent")
    monkeypatch.setattr(nvidia, "PROC_DRIVER_VERSION", tmp_path / "absent")
    result = cli.ok("detect", "--json")
    target = json.loads(result.stdout)["target"]
    assert target["variant"] == "cuda"
    assert (target["cuda"]["build"], target["cuda"]["driver"]) == ("12.9", "12.4")
    assert target["cuda"]["rule"] == "cuda-minor-version-compatibility"
    assert any("PTX JIT" in w for w in target["warnings"])
    table = cli.ok("detect")
    assert "minor-version compatibility" in table.stderr


@pytest.mark.parametrize(
    ("override", "variant", "build", "needle"),
    [
        pytest.param("12.0", "cuda", "12.9", "PTX JIT", id="12.0"),
        pytest.param("12.4", "cuda", "12.9", "PTX JIT", id="12.4"),
        pytest.param("12.8", "cuda", "12.9", "PTX JIT", id="12.8"),
        pytest.param("13.0", "cuda", "13.0", None, id="13.0"),
        pytest.param("11.8", "cpu", None, "525.60.13", id="11.8"),
    ],
)
def test_conda_override_cuda_through_the_cli(
    cli: Cli, override: str, variant: str, build: str | None, needle: str | None
) -> None:
    target = json.loads(cli.ok("detect", "--json", env={"CONDA_OVERRIDE_CUDA": override}).stdout)[
        "target"
    ]
    assert target["variant"] == variant
    assert target["cuda"]["build"] == build
    assert target["cuda"]["driver"] == override
    text = " ".join(target["warnings"]) + target["reason"]
    if needle is None:
        assert not target["warnings"]
    else:
        assert needle in text


def test_piped_sources_table_is_not_cut_at_80_columns(cli: Cli) -> None:
    """Outside a terminal, every value is printed in full (no "mach…")."""
    result = cli.ok("detect", "--sources")
    assert "…" not in result.stdout
    assert "platform.machine()" in result.stdout
    assert "confstr(CS_GNU_LIBC_VERSION)" in result.stdout or "linux" not in sys.platform


def test_installed_executable_and_module_entry_point() -> None:
    executable = Path(sys.executable).with_name("setup-tool")
    assert executable.exists(), "setup-tool is not installed in this environment (pip install -e .)"
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "detect" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "setup_tool", "detect", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema_version"] == 1
