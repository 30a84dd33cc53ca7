"""``setup-tool doctor`` end to end: real torch on this CPU, and interpreters that are broken.

The CPU runs import torch in a subprocess (a few seconds each); everything else uses fake
interpreters or an injected runner and detector, so no torch is imported.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli
from doctor_fixtures import MAC_ARM, MAIN, NO_DRIVER, install, write_lock

from setup_tool.detect import Detection, Overrides, Platform, select_target
from setup_tool.doctor import run_doctor
from setup_tool.runner import CommandResult
from setup_tool.variants import VariantChoice

DATA = Path(__file__).parent / "data"


def test_cpu_passes_here(cli: Cli) -> None:
    result = cli.ok("doctor", "--python", sys.executable, "--expect", "cpu")
    assert "✓  cpu" in result.output
    assert "cpu (expected) passed the placement check (exit 0)" in result.output
    assert "Found no NVIDIA driver" in result.output  # the cuda line says why it is skipped


def test_cuda_fails_here_with_a_fix_and_json(cli: Cli) -> None:
    result = cli("doctor", "--python", sys.executable, "--expect", "cuda", "--json")
    assert result.exit_code == 6, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert report["exit_code"] == 6
    assert report["expect"] == {"accelerator": "cuda", "source": "--expect"}
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["placement.cpu"]["status"] == "pass"
    assert by_id["placement.cuda"]["status"] == "fail"
    assert by_id["pitfall.no-nvidia-driver"]["status"] == "fail"
    assert "NVIDIA driver" in by_id["pitfall.no-nvidia-driver"]["fix"]
    assert report["probe"]["torch"]["version"].startswith("2.")


def test_default_environment_and_its_lock(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No --python: the detected variant's environment under .envs/, checked against its lock."""
    write_lock(tmp_path / "envs" / "locks" / "cpu.conda-lock.yml")
    prefix = install(tmp_path / ".envs" / "cpu", MAIN[:2])  # numpy is missing
    python = prefix / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("SETUP_TOOL_PROJECT", str(tmp_path))
    result = cli("doctor", "--json")
    report = json.loads(result.stdout)
    assert report["interpreter"]["source"] == "environment .envs/cpu"
    assert report["expect"]["accelerator"] == "cpu"
    assert report["expect"]["source"].startswith("detected")
    lock = next(c for c in report["checks"] if c["id"] == "lock")
    assert lock["status"] == "fail"
    assert "1 missing: numpy" in lock["detail"]
    # The CPU works; the environment left its lock: "another check failed".
    assert (result.exit_code, report["passed"]) == (8, True)


def test_missing_python_is_a_failed_check_not_a_traceback(cli: Cli) -> None:
    result = cli("doctor", "--python", "/no/such/python", "--expect", "cpu")
    assert result.exit_code == 6
    assert "✗  python" in result.output
    assert "--python /no/such/python: no such file or command" in result.output
    assert "Traceback" not in result.output


def test_crashing_python_shows_stderr_tail(cli: Cli, tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        "echo 'probe: importing torch' >&2\n"
        "echo 'Illegal instruction' >&2\n"
        "kill -ILL $$\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    result = cli("doctor", "--python", str(python), "--expect", "cpu")
    assert result.exit_code == 6
    assert "killed by SIGILL during 'importing torch'" in result.output
    assert "Illegal instruction" in result.output


def test_python_and_prefix_together_are_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("doctor", "--python", sys.executable, "--prefix", str(tmp_path))
    assert result.exit_code == 2
    assert "give one of them" in result.output


def test_python_found_on_path(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--python python3` as on the GPU machine: a bare name is looked up on PATH."""
    fake = tmp_path / "python3-fake"
    fake.write_text(f"#!/bin/sh\ncat {DATA / 'probe-linux-x86_64-cu130-no-gpu.json'}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    result = cli("doctor", "--python", "python3-fake", "--expect", "cpu", "--json")
    report = json.loads(result.stdout)
    assert report["interpreter"]["python"] == str(fake)
    assert result.exit_code == 0


def _recorded_runner(name: str):
    text = (DATA / name).read_text()

    def runner(argv, *, timeout=0, env=None, cwd=None):  # type: ignore[no-untyped-def]
        return CommandResult(tuple(argv), 0, text, "probe: importing torch\n")

    return runner


def _detector(platform: Platform):
    def detector(overrides: Overrides, environ: object) -> Detection:
        return Detection(platform, select_target(platform, overrides))

    return detector


@pytest.mark.parametrize(
    "case",
    [
        ("probe-derived-mac-mps.json", MAC_ARM, {}, "mps", "detected", 0),
        ("probe-linux-x86_64-cu130-no-gpu.json", NO_DRIVER, {}, "cpu", "detected", 0),
        (
            "probe-linux-x86_64-cu130-no-gpu.json",
            NO_DRIVER,
            {"SETUP_TOOL_VARIANT": "cuda"},
            "cuda",
            "SETUP_TOOL_VARIANT",
            6,
        ),
    ],
    ids=["mac-auto-mps", "linux-auto-cpu", "env-var-cuda"],
)
def test_expect_auto_follows_detection_and_the_environment_variable(
    tmp_path: Path, case: tuple[str, Platform, dict[str, str], str, str, int]
) -> None:
    name, platform, environ, expected, source, exit_code = case
    result = run_doctor(
        python=Path(sys.executable),
        prefix=None,
        expect=None,
        root=tmp_path,
        environ=environ,
        runner=_recorded_runner(name),
        detector=_detector(platform),
    )
    assert result.expect.value == expected
    assert result.expect_source.startswith(source)
    assert int(result.exit_code) == exit_code


def test_expect_flag_beats_the_environment_variable(tmp_path: Path) -> None:
    result = run_doctor(
        python=Path(sys.executable),
        prefix=None,
        expect=VariantChoice.cpu,
        root=tmp_path,
        environ={"SETUP_TOOL_VARIANT": "cuda"},
        runner=_recorded_runner("probe-linux-x86_64-cu130-no-gpu.json"),
        detector=_detector(NO_DRIVER),
    )
    assert (result.expect.value, result.expect_source) == ("cpu", "--expect")


def test_installed_command_runs_as_a_module() -> None:
    """``python -m setup_tool doctor --help``: how scripts/record-gpu-evidence.sh runs it."""
    completed = subprocess.run(
        [sys.executable, "-m", "setup_tool", "doctor", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--expect" in completed.stdout


def test_bad_flag_value_is_one_error_line(cli: Cli) -> None:
    result = cli("doctor", "--expect", "gpu")
    assert result.exit_code == 2
    assert result.output.startswith("error: Invalid value for '--expect'")
    assert "╭" not in result.output


@pytest.mark.gpu
@pytest.mark.skipif(
    not Path("/proc/driver/nvidia/version").exists(), reason="needs an NVIDIA GPU and driver"
)
def test_cuda_passes_on_a_gpu_machine(cli: Cli) -> None:
    result = cli.ok("doctor", "--python", sys.executable, "--expect", "cuda")
    assert "cuda (expected) passed the placement check" in result.output
