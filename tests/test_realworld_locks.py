"""Real lockfiles from public repositories (``../shared/realworld-locks/``, read as they are):
the right verdict for a machine without a GPU, one with a CUDA 12.4 driver (550 series) and one
with a CUDA 13.0 driver, a message that names the actual cause, and valid ``--json``.

The verdicts follow from rules (cuda_compat's minor-version compatibility, the lock's own
``__cuda`` / ``cuda-version`` / build strings, glibc specs, the platform), not from the file
names: each case says what the rule must conclude and which words the message must carry.
Files with pip entries get the machine check's verdict here, their wheels included; a pip
entry that is a source (poprox's git checkout) is one of the reasons a lock does not fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from setup_tool.errors import ExitCode, LockfileMismatch
from setup_tool.install.compat import MachineFacts, assess
from setup_tool.install.lockread import read_locked_platform

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "realworld-locks"

pytestmark = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"the real-world lockfiles are not here ({REAL})"
)

# The machines: (facts for the API, CONDA_OVERRIDE_* for the CLI). glibc 2.36 is Debian 12's.
MACHINES = {
    "cpu": (MachineFacts(None, None, "2.36"), {"CONDA_OVERRIDE_CUDA": ""}),
    "cuda12.4": (MachineFacts("12.4", "550.54.15", "2.36"), {"CONDA_OVERRIDE_CUDA": "12.4"}),
    "cuda13.0": (MachineFacts("13.0", "580.65.06", "2.36"), {"CONDA_OVERRIDE_CUDA": "13.0"}),
}
GLIBC = {"CONDA_OVERRIDE_GLIBC": "2.36"}


@dataclass(frozen=True)
class Verdict:
    fits: bool
    words: tuple[str, ...] = ()  # must appear in the refusal (or, for a fit, in the warnings)
    absent: tuple[str, ...] = ()  # must not appear in the message (wrong causes, wrong fixes)
    pip: bool = False  # has pip entries (wheels the dry run plans too)


FITS = Verdict(True)
MINOR_WARNING = ("minor-version compatibility", "PTX JIT")
PANGEO_TORCH = "pangeo-data-pangeo-docker-images-pytorch-notebook.conda-lock.yml"
PANGEO_ML = "pangeo-data-pangeo-docker-images-ml-notebook.conda-lock.yml"
NO_OTHER_INSTALLER = ("conda-lock install", "CONDA_OVERRIDE_CUDA", "setup-tool lock")

CASES: dict[str, dict[str, Verdict]] = {
    PANGEO_TORCH: {
        "cpu": Verdict(
            False,
            (
                "pytorch",
                "xgboost",
                "CUDA 12.9 (cuda-version 12.9)",
                "no NVIDIA driver",
                "525.60.13",
            ),
            NO_OTHER_INSTALLER,
        ),
        "cuda12.4": Verdict(True, ("pytorch", *MINOR_WARNING)),
        "cuda13.0": FITS,
    },
    PANGEO_ML: {
        # No PyTorch at all: the refusal names the CUDA packages it does have.
        "cpu": Verdict(
            False,
            ("jaxlib", "tensorflow", "CUDA builds", "no NVIDIA driver"),
            ("PyTorch", *NO_OTHER_INSTALLER),
        ),
        "cuda12.4": Verdict(True, ("jaxlib", *MINOR_WARNING)),
        "cuda13.0": FITS,
    },
    "cqian89-bioimage-mcp-cellpose.conda-lock.yml": dict.fromkeys(MACHINES, FITS),
    # Its pip part holds a git checkout (poprox-concepts), which would have to be built.
    "CCRI-POPROX-poprox-recommender-cpu.conda-lock.yml": dict.fromkeys(
        MACHINES,
        Verdict(False, ("poprox-concepts 0.0.1 is a source, not a wheel", "git+https://")),
    ),
    "eotles-ai-research-env-gpu.conda-lock.yml": {
        # The retired pytorch channel: no __cuda anywhere; build strings and pytorch-cuda say it.
        "cpu": Verdict(
            False,
            ("pytorch", "CUDA 12.4 (pytorch-cuda 12.4)", "no NVIDIA driver"),
            NO_OTHER_INSTALLER,
        ),
        "cuda12.4": Verdict(True, pip=True),
        "cuda13.0": Verdict(True, pip=True),
    },
    "DesignAutomationLaboratory-autopack-win64.conda-lock.yml": dict.fromkeys(
        MACHINES, Verdict(False, ("no packages for this machine's platform linux-64", "win-64"))
    ),
    # cudatoolkit 11.8 but nothing depends on __cuda: openmm runs on the CPU too.
    "EricChen521-atm-openmm.conda-lock.yml": dict.fromkeys(MACHINES, FITS),
    # conda-lock 1.0 (2022) with a leaked __glibc entry: read, that entry skipped and named.
    "vistalab-technion-vqr-cpu-old.conda-lock.yml": dict.fromkeys(
        MACHINES, Verdict(True, ("skipped the entry __glibc 2.17", "virtual package"))
    ),
    "vistalab-technion-vqr-linux-64-explicit.lock": dict.fromkeys(
        MACHINES, Verdict(True, ("verified by md5 only", "records no dependencies"))
    ),
}


def test_every_real_lockfile_has_a_case() -> None:
    files = {p.name for p in REAL.iterdir() if p.name != "README.md"}
    assert files == set(CASES)


PARAMS = [
    pytest.param(name, machine, verdict, id=f"{name.split('.')[0][:40]}-{machine}")
    for name, verdicts in CASES.items()
    for machine, verdict in verdicts.items()
]


@pytest.mark.parametrize(("name", "machine", "verdict"), PARAMS)
def test_machine_check_verdict(name: str, machine: str, verdict: Verdict) -> None:
    facts = MACHINES[machine][0]
    try:
        locked = read_locked_platform(REAL / name, "linux-64")
    except LockfileMismatch as exc:  # the platform: before any package is looked at
        assert not verdict.fits
        _assert_words(f"{exc.message} {exc.hint}", verdict)
        return
    check = assess(locked, facts)
    assert check.fits == verdict.fits, [m.reason for m in check.mismatches]
    if verdict.fits:
        _assert_words(" ".join((*locked.warnings, *check.warnings)), verdict)
    else:
        _assert_words(" ".join(f"{m.reason} {m.fix}" for m in check.mismatches), verdict)


def _assert_words(text: str, verdict: Verdict) -> None:
    for word in verdict.words:
        assert word in text, (word, text)
    for word in verdict.absent:
        assert word not in text, (word, text)


@pytest.mark.parametrize(("name", "machine", "verdict"), PARAMS)
def test_cli_dry_run_json(cli, tmp_path: Path, name: str, machine: str, verdict: Verdict) -> None:  # type: ignore[no-untyped-def]
    """One JSON document on stdout whatever the verdict, no traceback, the documented code."""
    env = {**MACHINES[machine][1], **GLIBC}
    args = ["install", "--lockfile", str(REAL / name), "--prefix", str(tmp_path / "env")]
    result = cli(*args, "--dry-run", "--json", env=env)
    assert "Traceback" not in result.output
    data = json.loads(result.stdout)  # exactly one document
    if verdict.fits and not verdict.pip:
        assert result.exit_code == 0, result.output
        assert data["status"] == "dry-run"
        assert data["plan"]["add"]
        _assert_words(" ".join(data["warnings"]), verdict)
    elif verdict.fits:  # with pip entries: the plan has them
        assert result.exit_code == 0, result.output
        assert data["plan"]["pip"]["add"]
    else:
        assert result.exit_code == ExitCode.LOCK_MISMATCH, result.output
        error = data["error"]
        assert (error["type"], error["exit_code"]) == ("LockfileMismatch", 5)
        _assert_words(f"{error['message']} {error['hint']}", verdict)
        assert error["reasons"]
    assert not (tmp_path / "env").exists()


def test_every_reason_is_listed_in_order(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """pangeo's pytorch lock on an old-glibc machine without a GPU: CUDA first, then glibc,
    both in the message and the JSON (never "and 1 more")."""
    env = {"CONDA_OVERRIDE_CUDA": "", "CONDA_OVERRIDE_GLIBC": "2.28"}
    args = ["install", "--lockfile", str(REAL / PANGEO_TORCH), "--prefix", str(tmp_path / "env")]
    result = cli(*args, "--dry-run", "--json", env=env)
    assert result.exit_code == 5
    error = json.loads(result.stdout)["error"]
    assert [r["kind"] for r in error["reasons"]] == ["cuda", "glibc"]
    assert "(2 reasons)" in error["message"] and "more)" not in error["message"]
    assert error["message"].index("no NVIDIA driver") < error["message"].index("glibc >=2.34")
    assert "glibc >=2.34" in error["hint"] and "525.60.13" in error["hint"]
    text = cli(*args, "--dry-run", env=env)
    assert text.exit_code == 5
    lines = [line for line in text.stderr.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")


def test_the_project_s_cuda_lock_may_point_at_its_cpu_variant_but_a_real_lock_not(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    env = {"CONDA_OVERRIDE_CUDA": "", **GLIBC, "SETUP_TOOL_VARIANT": "cuda"}
    args = ["install", "--lockfile", str(REAL / PANGEO_ML), "--prefix", str(tmp_path / "env")]
    result = cli(*args, "--dry-run", env=env)
    assert result.exit_code == 5
    assert "--variant" not in result.stderr and "setup-tool lock" not in result.stderr
