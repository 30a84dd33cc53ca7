"""``setup-tool doctor``: does the accelerator really work in the target environment?

    resolve_interpreter ─► run_probe (probe.py in that Python: stdlib + torch, prints JSON)
                               └─► ProbeFacts (facts.py) ─┐
    detect() ─► Platform ─────────────────────────────────┼─► judge (checks.py, pitfalls.py,
    conda-meta/*.json vs conda-lock file (drift.py) ──────┤         broken_torch.py)
    torch's files vs its conda record (package_files.py) ─┤        └─► DoctorResult (result.py)
    torchrun: distributed_probe.py (collective_run.py) ───┘   collective.py,
      + nvidia-smi topo -m (topology.py)                      collective_pitfalls.py,
                                                              bandwidth.py

``gather.run_doctor`` gathers the evidence and returns the ``DoctorResult``, reporting each step
to a ``DoctorProgress`` (progress.py); the CLI (``setup_tool.cli.doctor``) renders both and
exits with ``DoctorResult.exit_code``. "Probe" means a script that runs inside the target
environment: ``probe.py`` (placement, once) and ``distributed_probe.py`` (the collective check,
once per rank). The CLI process never imports torch, and nothing here imports conda-lock or
py-rattler at import time.
"""

from __future__ import annotations

from setup_tool.doctor.collective import CollectiveOptions
from setup_tool.doctor.gather import run_doctor
from setup_tool.doctor.progress import DoctorProgress
from setup_tool.doctor.result import Check, DoctorResult, Status

__all__ = ["Check", "CollectiveOptions", "DoctorProgress", "DoctorResult", "Status", "run_doctor"]
