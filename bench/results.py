"""The result of one run on disk: a versioned JSON document and the seed's ``.txt``.

``<results>/<run id>.json`` holds the configuration, the facts of the machine, torch and the
device, the warm-up, one record per finished epoch and a summary; docs/bench.md documents every
field ("Results JSON"). ``<run id>.txt`` holds one epoch time in seconds per line, as the seed
saved them. Files are written to a temporary name and renamed, so a reader never sees half a
file. A run stopped by Ctrl-C is written with ``complete: false`` and the epochs it finished.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import SCHEMA, SCHEMA_VERSION
from .config import BenchConfig
from .errors import BenchError
from .loops import EpochStats, WarmupStats
from .timing import percentiles_ms

PACKAGE_DIR = Path(__file__).parent


def ensure_writable(directory: Path) -> None:
    """Fail before the run, not after it, when results cannot be saved."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(
            f"results directory {directory} is not writable ({exc.strerror or exc})",
            "pass --results-dir with a directory you can write to",
        ) from None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            return out.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_bytes() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes; Linux: KiB


def machine_facts(label: str | None) -> dict[str, Any]:
    hostname = socket.gethostname()
    return {
        "label": label or hostname,
        "hostname": hostname,
        "os": platform.system().lower(),
        "os_release": platform.release(),
        "mac_version": platform.mac_ver()[0] or None,
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "python_version": platform.python_version(),
        "python_executable": sys.executable,
        "prefix": sys.prefix,
    }


def torch_facts() -> dict[str, Any]:
    import torch

    mps = getattr(torch.backends, "mps", None)
    cudnn: Any = torch.backends.cudnn  # (torch leaves its functions unannotated)
    facts: dict[str, Any] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn.version() if cudnn.is_available() else None,
        "mps_built": bool(mps and mps.is_built()),
        "num_threads": torch.get_num_threads(),
        "torchvision": None,
    }
    if "torchvision" in sys.modules:
        facts["torchvision"] = getattr(sys.modules["torchvision"], "__version__", None)
    return facts


def git_facts() -> dict[str, Any]:
    """The commit of the benchmark's source, when it runs from a git checkout."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(PACKAGE_DIR), *args],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", ".") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def run_id(started: datetime, machine: dict[str, Any], device: str, loop: str) -> str:
    raw = f"{started:%Y%m%dT%H%M%SZ}-{machine['label']}-{device}-{loop}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw)


def epoch_record(stats: EpochStats) -> dict[str, Any]:
    record: dict[str, Any] = {
        "epoch": stats.epoch,
        "seconds": stats.seconds,
        "steps": stats.steps,
        "samples": stats.samples,
        "samples_per_second": stats.samples / stats.seconds if stats.seconds else None,
        "loss": stats.loss,
        "accuracy": stats.accuracy,
        "step_ms": percentiles_ms(stats.step_seconds),
    }
    if stats.first_losses is not None:
        record["first_losses"] = stats.first_losses
    return record


def build_result(
    *,
    config: BenchConfig,
    requested_device: str,
    device: dict[str, Any],
    details: dict[str, Any],
    warmup: WarmupStats | None,
    epochs: list[EpochStats],
    test: tuple[float, int] | None,
    started: datetime,
    interrupted: bool,
    peak_device_memory: int | None,
    machine: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    machine = machine or machine_facts(config.label)
    complete = not interrupted and error is None and len(epochs) == config.epochs
    kind = f"{config.loop}-x{config.world_size}" if config.data_parallel else config.loop
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(started, machine, device_slug(config.device), kind),
        "complete": complete,
        "interrupted": interrupted,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed_comparable": config.seed_comparable,
        "config": {**config.to_json(), "device_requested": requested_device},
        "loop": details,
        "machine": machine,
        "torch": torch_facts(),
        "device": device,
        "environment": {"lock_hash": config.lock_hash, "prefix": sys.prefix},
        "source": git_facts(),
        "warmup": None if warmup is None else warmup_record(warmup),
        "epochs": [epoch_record(e) for e in epochs],
        "summary": summary_record(epochs, test, peak_device_memory),
        "error": error,
        "distributed": None,
        **(extra or {}),
    }


def warmup_record(warmup: WarmupStats) -> dict[str, Any]:
    return {
        "steps": warmup.steps,
        "seconds": warmup.seconds,
        "first_step_seconds": warmup.first_step_seconds,
        "capture_seconds": warmup.capture_seconds,
    }


def summary_record(
    epochs: list[EpochStats], test: tuple[float, int] | None, peak_device_memory: int | None
) -> dict[str, Any]:
    seconds = [e.seconds for e in epochs]
    samples = sum(e.samples for e in epochs)
    return {
        "epochs_completed": len(epochs),
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "seconds_per_epoch_median": sorted(seconds)[len(seconds) // 2] if seconds else None,
        "samples_per_second": samples / sum(seconds) if seconds else None,
        "train_loss": epochs[-1].loss if epochs else None,
        "train_accuracy": epochs[-1].accuracy if epochs else None,
        "test_accuracy": test[0] if test else None,
        "test_samples": test[1] if test else None,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_device_memory_bytes": peak_device_memory,
    }


def device_slug(device: str) -> str:
    return device.replace(":", "")


def write_result(result: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``<run id>.json`` and the seed-style ``<run id>.txt``; return both paths."""
    json_path = directory / f"{result['run_id']}.json"
    txt_path = json_path.with_suffix(".txt")
    lines = "".join(f"{e['seconds']:.6f}\n" for e in result["epochs"])
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in ((json_path, json.dumps(result, indent=2) + "\n"), (txt_path, lines)):
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            tmp.replace(path)
    except OSError as exc:
        raise BenchError(
            f"could not write results to {directory} ({exc.strerror or exc})",
            "pass --results-dir with a directory you can write to",
        ) from None
    return json_path, txt_path
