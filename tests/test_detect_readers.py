"""The small readers behind ``detect``, fed captured outputs from tests/data/ and real processes."""

from __future__ import annotations

import os
import platform as stdlib_platform
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from setup_tool.detect import linux, macos, nvidia
from setup_tool.detect.probe import probe
from setup_tool.runner import CommandResult, run_command

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


class FakeRunner:
    """Answers argv prefixes with canned results and records every call."""

    def __init__(self, answers: Mapping[tuple[str, ...], CommandResult]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float = 5.0, env=None, cwd=None):
        argv = tuple(argv)
        self.calls.append(argv)
        for prefix, result in self.answers.items():
            if argv[: len(prefix)] == prefix:
                return result
        return CommandResult(argv, None, error=f"{argv[0]} not found")


def ok(stdout: str, stderr: str = "", code: int = 0) -> CommandResult:
    return CommandResult(("x",), code, stdout, stderr)


def no_nvml():
    raise ImportError


# --- driver version files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("proc-driver-nvidia-version-470.txt", "470.82.01"),
        ("proc-driver-nvidia-version-575-open.txt", "575.57.08"),
        ("proc-driver-nvidia-version-h200.txt", "580.159.04"),
        ("sys-module-nvidia-version-h200.txt", "580.159.04"),
    ],
)
def test_proc_driver_version(name: str, version: str) -> None:
    assert nvidia.parse_driver_version_file(read(name)) == version


def test_sys_module_version_and_garbage() -> None:
    assert nvidia.parse_driver_version_file("580.159.03\n") == "580.159.03"
    assert nvidia.parse_driver_version_file("not a driver\n") is None


# --- nvidia-smi ------------------------------------------------------------------------------


def test_smi_header_cuda_version() -> None:
    assert nvidia.parse_smi_header_cuda(read("nvidia-smi-470-t4.txt")) == "11.4"
    assert nvidia.parse_smi_header_cuda(read("nvidia-smi-h200.txt")) == "13.0"


def test_smi_query_of_a_real_h200() -> None:
    (gpu,) = nvidia.parse_smi_query(read("nvidia-smi-query-h200.csv"))
    assert (gpu.name, gpu.memory_mib, gpu.compute_capability) == ("NVIDIA H200", 143771, "9.0")
    assert nvidia.smi_driver_versions(read("nvidia-smi-query-h200.csv")) == {"580.159.04"}
    assert nvidia.parse_smi_header_cuda("garbage") is None


def test_smi_query_reads_every_gpu_line() -> None:
    gpus = nvidia.parse_smi_query(read("nvidia-smi-query-two-a100.csv"))
    assert [g.index for g in gpus] == [0, 1]
    assert {g.compute_capability for g in gpus} == {"8.0"}
    assert gpus[1].memory_mib == 81920


@pytest.mark.parametrize("garbage", ["", "Segmentation fault\n", "0, GPU\n", "a,b,c,d,e,f\n"])
def test_smi_query_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError):
        nvidia.parse_smi_query(garbage)


def test_old_nvidia_smi_without_compute_cap_is_retried_with_old_fields() -> None:
    runner = FakeRunner(
        {
            (
                "nvidia-smi",
                "--query-gpu=index,name,driver_version,memory.total,compute_cap,uuid",
            ): ok(read("nvidia-smi-470-query-compute-cap-error.txt"), code=2),
            ("nvidia-smi", "--query-gpu=index,name,driver_version,memory.total,uuid"): ok(
                read("nvidia-smi-470-query-old-fields.csv")
            ),
            ("nvidia-smi",): ok(read("nvidia-smi-470-t4.txt")),
        }
    )
    reading = nvidia.read_nvidia(runner, nvml_loader=no_nvml, driver_files=())
    assert reading.nvidia is not None
    assert reading.nvidia.driver_version == "470.82.01"
    assert reading.nvidia.cuda_version == "11.4"
    assert reading.nvidia.gpus[0].name == "Tesla T4"
    assert reading.nvidia.gpus[0].compute_capability is None
    assert reading.sources["nvidia.cuda_version"] == "nvidia-smi"
    assert len(runner.calls) == 3


def test_driver_file_without_nvidia_smi_infers_cuda_from_the_driver_table(tmp_path: Path) -> None:
    version_file = tmp_path / "version"
    version_file.write_text("580.159.03\n")
    reading = nvidia.read_nvidia(FakeRunner({}), nvml_loader=no_nvml, driver_files=(version_file,))
    assert reading.nvidia is not None
    assert reading.nvidia.driver_version == "580.159.03"
    assert reading.nvidia.cuda_version == "13.0"
    assert "table" in reading.sources["nvidia.cuda_version"]
    assert reading.sources["nvidia.driver_version"] == str(version_file)
    assert "not found" in reading.unknown["nvidia.gpus"]


def test_no_driver_anywhere_is_none_with_every_reason(tmp_path: Path) -> None:
    reading = nvidia.read_nvidia(
        FakeRunner({}), nvml_loader=no_nvml, driver_files=(tmp_path / "absent",)
    )
    assert reading.nvidia is None
    why = reading.unknown["nvidia"]
    assert "nvidia-ml-py" in why
    assert "absent" in why
    assert "nvidia-smi" in why


class FakeNvml:
    """The pynvml calls read_nvml makes, answering like an H200 on driver 580."""

    class _Memory:
        total = 143771 * 2**20

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"580.159.03"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 13000

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        return (9, 0)

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H200"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Memory:
        return self._Memory()

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return "GPU-0"


def test_nvml_is_preferred_and_decodes_versions() -> None:
    runner = FakeRunner({})
    reading = nvidia.read_nvidia(runner, nvml_loader=FakeNvml)
    assert reading.nvidia is not None
    assert reading.nvidia.cuda_version == "13.0"
    assert reading.nvidia.driver_version == "580.159.03"
    assert reading.nvidia.gpus[0].memory_mib == 143771
    assert reading.nvidia.gpus[0].compute_capability == "9.0"
    assert set(reading.sources.values()) == {"nvml"}
    assert runner.calls == []  # nvidia-smi is not needed when NVML answers


def test_nvml_failing_midway_falls_back() -> None:
    class Broken(FakeNvml):
        def nvmlDeviceGetCount(self) -> int:
            raise RuntimeError("GPU is lost")

    nv, why = nvidia.read_nvml(Broken)
    assert nv is None
    assert "GPU is lost" in str(why)


@pytest.mark.parametrize(("value", "text"), [(13000, "13.0"), (12090, "12.9"), (11040, "11.4")])
def test_cuda_version_from_int(value: int, text: str) -> None:
    assert nvidia.cuda_version_from_int(value) == text


# --- a real nvidia-smi executable that misbehaves ----------------------------------------------


def fake_executable(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def smi_runner(directory: Path):
    """run_command with PATH pointing at ``directory`` first, as a user's shell would."""
    env = {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}

    def runner(argv, *, timeout=5.0, env_=None, cwd=None):  # type: ignore[no-untyped-def]
        return run_command([str(directory / argv[0]), *argv[1:]], timeout=timeout, env=env)

    return runner


def test_hanging_nvidia_smi_is_bounded_and_reported(tmp_path: Path) -> None:
    fake_executable(tmp_path, "nvidia-smi", "import time; time.sleep(60)")
    start = time.monotonic()
    smi, why = nvidia.read_nvidia_smi(smi_runner(tmp_path), timeout=1.0)
    elapsed = time.monotonic() - start
    assert smi is None
    assert "timed out" in str(why)
    assert elapsed < 30  # a hang (60 s) is the failure tested: generous over the 1 s timeout
    assert nvidia.NVIDIA_SMI_TIMEOUT_S <= 5.0


def test_failing_and_garbage_nvidia_smi_are_reported(tmp_path: Path) -> None:
    fake_executable(
        tmp_path, "nvidia-smi", "import sys; print('NVIDIA-SMI has failed'); sys.exit(9)"
    )
    smi, why = nvidia.read_nvidia_smi(smi_runner(tmp_path))
    assert smi is None
    assert "exited with 9" in str(why)
    fake_executable(tmp_path, "nvidia-smi", "print('\\x00\\x01 garbage ,,, here')")
    smi, why = nvidia.read_nvidia_smi(smi_runner(tmp_path))
    assert smi is None
    assert "could not be read" in str(why)


# --- macOS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "apple_silicon", "rosetta", "version"),
    [
        ("sysctl-mac-arm64.txt", True, False, "15.1"),
        ("sysctl-mac-rosetta.txt", True, True, "15.1"),
        ("sysctl-mac-intel.txt", False, False, "13.6.1"),
    ],
    ids=["mac-arm64", "mac-rosetta", "mac-intel"],
)
def test_sysctl(name: str, apple_silicon: bool, rosetta: bool, version: str) -> None:
    stderr = (DATA / name.replace(".txt", ".stderr.txt")).read_text() if "intel" in name else ""
    runner = FakeRunner({("sysctl",): ok(read(name), stderr, code=1 if stderr else 0)})
    reading = macos.read_macos(runner)
    assert reading.apple_silicon is apple_silicon
    assert reading.rosetta is rosetta
    assert reading.version == version
    assert reading.memory_bytes == 16 * 2**30
    assert reading.cpu_model


def test_sysctl_missing_falls_back_to_platform_version() -> None:
    reading = macos.read_macos(FakeRunner({}), fallback_version="14.2")
    assert reading.version == "14.2"
    assert reading.apple_silicon is None
    assert reading.error


# --- Linux files ------------------------------------------------------------------------------


def test_linux_files() -> None:
    assert (
        linux.parse_os_release(read("os-release-debian12.txt")) == "Debian GNU/Linux 12 (bookworm)"
    )
    assert linux.parse_cpuinfo_model(read("cpuinfo-epyc-2core.txt")) == "AMD EPYC"
    assert linux.parse_meminfo_total(read("meminfo-24g.txt")) == 24684096 * 1024
    assert linux.parse_os_release('NAME="Alpine Linux"\nVERSION="3.20"\n') == "Alpine Linux 3.20"
    assert linux.parse_cpuinfo_model("processor: 0\n") is None


# --- the whole probe on this machine, with a fake nvidia-smi on PATH -------------------------


def test_probe_of_this_machine_records_sources() -> None:
    platform = probe()
    assert platform.os == stdlib_platform.system().lower()
    assert platform.python_version == ".".join(map(str, sys.version_info[:3]))
    assert platform.cpu_count == os.cpu_count()
    assert platform.sources["os"] == "platform.system()"
    if platform.os == "linux":
        assert platform.glibc_version
        assert platform.sources["linux.glibc"]


def test_cuda_visible_devices_is_reported_as_given() -> None:
    assert probe({"CUDA_VISIBLE_DEVICES": ""}).cuda_visible_devices == ""
    assert probe({}).cuda_visible_devices is None
