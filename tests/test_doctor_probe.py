"""The probe script, run for real: in this interpreter (real torch on the CPU) and in staged
environments where torch or torchvision is broken. Each real run imports torch (seconds), so
the plain run is shared by the tests that read it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from setup_tool.doctor.checks import RELATIVE_TOLERANCE
from setup_tool.doctor.facts import ProbeFacts, parse_probe
from setup_tool.doctor.launch import PROBE_SCRIPT

Recorded = tuple[subprocess.CompletedProcess[str], ProbeFacts]


def run_probe_script(
    python: str = sys.executable, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [python, str(PROBE_SCRIPT)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def real() -> Recorded:
    completed = run_probe_script()
    return completed, parse_probe(json.loads(completed.stdout))


def test_stdout_is_exactly_one_json_document(
    real: Recorded,
) -> None:
    completed, facts = real
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["schema_version"] == 1
    # Stages go to stderr, so a crash can be placed.
    assert "probe: importing torch" in completed.stderr
    assert facts.probe_error is None


def test_records_torch_build_and_backends(
    real: Recorded,
) -> None:
    import torch

    _, facts = real
    assert facts.torch is not None
    assert facts.torch.version == torch.__version__
    assert facts.torch.cuda == torch.version.cuda
    assert facts.torch.arch_list == tuple(torch.cuda.get_arch_list())
    assert facts.torch.cuda_available is False  # no GPU on the test machines
    assert facts.torch.cuda_error  # and the probe says why, in torch's words
    assert facts.python_executable == sys.executable


def test_cpu_placement_is_real_work_within_tolerance(
    real: Recorded,
) -> None:
    _, facts = real
    (cpu,) = facts.placements("cpu")
    assert (cpu.stage, cpu.moved_to, cpu.error, cpu.round_trip_equal) == ("done", "cpu", None, True)
    for measured in (cpu.conv, cpu.matmul):
        assert measured is not None and measured.finite
        assert measured.reference_max_abs > 1.0  # real data, not zeros
        assert measured.relative_error is not None
        assert 0 < measured.relative_error < RELATIVE_TOLERANCE["float32"] / 10
        assert measured.first_s is not None and measured.warm_s is not None
        assert measured.warm_s > 0


def test_torchvision_ops_load_and_nms_runs(
    real: Recorded,
) -> None:
    import torchvision

    _, facts = real
    vision = facts.torchvision
    assert vision is not None and vision.found and vision.ops_loaded
    assert vision.version == torchvision.__version__
    assert vision.nms["cpu"].ok


def test_torch_import_failure_is_recorded_and_stdout_stays_json(tmp_path: Path) -> None:
    """A broken torch that also prints to stdout while importing: the JSON still parses."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "import os\n"
        "print('noise from a library at import time')\n"
        "os.write(1, b'noise written to fd 1 by native code\\n')\n"
        "raise ImportError('libcudnn.so.9: cannot open shared object file')\n"
    )
    completed = run_probe_script(pythonpath=tmp_path)
    assert completed.returncode == 0, completed.stderr
    facts = parse_probe(json.loads(completed.stdout))
    assert facts.torch is None
    assert facts.torch_error == "ImportError: libcudnn.so.9: cannot open shared object file"
    assert "noise from a library" in completed.stderr
    assert "noise written to fd 1" in completed.stderr


def test_broken_torchvision_extension_is_reported_with_the_loader_error(tmp_path: Path) -> None:
    """A torchvision whose compiled ops are not loadable (here: not a shared library at all)."""
    package = tmp_path / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "version.py").write_text("__version__ = '0.20.1'\n")
    (package / "_C.so").write_bytes(b"not an ELF file")
    completed = run_probe_script(pythonpath=tmp_path)
    facts = parse_probe(json.loads(completed.stdout))
    vision = facts.torchvision
    assert vision is not None
    assert (vision.found, vision.version, vision.ops_loaded) == (True, "0.20.1", False)
    assert vision.ops_error is not None and "_C.so" in vision.ops_error
