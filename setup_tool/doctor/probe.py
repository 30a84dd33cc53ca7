"""The doctor's probe: runs *inside* the target interpreter and prints one JSON document.

It needs only the standard library and torch, so it runs in any environment, and standalone:
``python setup_tool/doctor/probe.py > probe.json`` records a machine for ``tests/data/``.
It records facts and measurements only; every judgement (tolerances, pitfalls, exit codes)
is made by setup-tool from this JSON (``setup_tool.doctor.checks``), so a recorded probe can
be re-judged in tests.

Robustness rules, because this is the part that meets broken environments:

- It never raises: a failing ``import torch`` or device is recorded with its error text.
- Anything written to stdout while it works (by torch, a library, a C extension) is sent to
  stderr at the file-descriptor level, so stdout carries exactly one JSON document.
- It names each stage on stderr before starting it, so when the process dies in native code
  (a segfault in a driver, an abort) the caller's stderr tail says where.
- It runs on old Pythons (3.8+): no ``match``, no runtime ``X | Y`` types, no setup_tool imports.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# Environment variables that change what torch sees or does on a device; recorded as given.
ENVIRONMENT_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "PYTORCH_ENABLE_MPS_FALLBACK",
    "PYTORCH_MPS_HIGH_WATERMARK_RATIO",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
)
# Variables with these prefixes change how collectives run (NCCL's, PyTorch's NCCL and gloo
# settings); every one that is set is recorded, so a forgotten NCCL_P2P_DISABLE=1 shows.
ENVIRONMENT_PREFIXES = ("NCCL_", "TORCH_NCCL_", "GLOO_", "TORCH_DISTRIBUTED_")

# Sizes of the placement work: big enough to run real kernels (cuDNN / cuBLAS / MPS graphs),
# small enough to take milliseconds on a CPU. Inner dimensions are 144 (conv) and 256
# (matmul) products per output, which sets the rounding error the tolerance allows for.
CONV_INPUT = (4, 16, 32, 32)
CONV_WEIGHT = (32, 16, 3, 3)
MATMUL_SIZE = 256
WARM_REPEATS = 3
ERROR_TEXT_LIMIT = 600


def main() -> int:
    started = time.perf_counter()
    # The directory of this file comes first on sys.path when it runs as a script; drop it so
    # that nothing beside it can shadow a module torch imports.
    here = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0] or os.curdir).resolve() == here:
        del sys.path[0]
    json_out = _claim_stdout()
    report: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "probe": {"error": None}}
    try:
        _collect(report)
    except Exception as exc:  # a probe bug must still leave a JSON document behind
        report["probe"]["error"] = _error_text(exc)
        report["probe"]["error_origin"] = _error_origin(exc, report.get("torch"))
        report["probe"]["traceback"] = traceback.format_exc(limit=6)[-2000:]
    report["probe"]["seconds"] = round(time.perf_counter() - started, 3)
    os.write(json_out, (json.dumps(report, indent=2) + "\n").encode())
    return 0


def _collect(report: dict[str, Any]) -> None:
    report["python"] = _python_facts()
    report["environment"] = _environment()
    report["nvidia_driver"] = _nvidia_driver()
    report["torch"] = None
    report["devices"] = []
    report["placement"] = []
    # Where torchvision is needs no torch: recorded first, so a torch that breaks the probe
    # later still leaves "torchvision 0.29.1 is installed" in the report.
    report["torchvision"] = _torchvision_location()
    torch_facts, torch = _import_torch()
    report["torch"] = torch_facts
    if torch is None:
        return
    torch_facts["missing_api"] = _missing_api(torch)
    if torch_facts["missing_api"]:
        return  # a stand-in or half-installed torch: every later stage would trip over it
    _stage("inspecting backends")
    _backends(torch, torch_facts)
    report["devices"] = _cuda_devices(torch, torch_facts)
    devices = ["cpu"] + [f"cuda:{d['index']}" for d in report["devices"]]
    if torch_facts.get("mps_available"):
        devices.append("mps")
    tf32 = _disable_tf32(torch, torch_facts)
    try:
        for device in devices:
            _stage("placement check on " + device)
            report["placement"].append(_placement(torch, device, tf32))
    finally:
        _restore_tf32(torch, tf32)
    _stage("torchvision")
    _torchvision_ops(torch, devices, report["torchvision"])


def _environment() -> dict[str, str | None]:
    environment = {k: os.environ.get(k) for k in ENVIRONMENT_VARIABLES}
    for name in sorted(os.environ):
        if name.startswith(ENVIRONMENT_PREFIXES):
            environment[name] = os.environ[name]
    return environment


def _claim_stdout() -> int:
    """Keep the real stdout for the JSON; point fd 1 (and sys.stdout) at stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return saved


def _stage(name: str) -> None:
    sys.stderr.write(f"probe: {name}\n")
    sys.stderr.flush()


def _error_text(exc: BaseException) -> str:
    """``Type: message``, cut to a readable length (torch errors can list every backend)."""
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + " ..."


def _error_origin(exc: BaseException, torch_facts: dict[str, Any] | None) -> str:
    """ "torch" when the error was raised inside torch's own files (a torch broken in a way the
    API check missed), else "probe" (a bug in this script)."""
    torch_dir = (torch_facts or {}).get("path")
    frames = traceback.extract_tb(exc.__traceback__)
    if torch_dir and frames and frames[-1].filename.startswith(torch_dir + os.sep):
        return "torch"
    if isinstance(exc, AttributeError) and str(exc).startswith("module 'torch"):
        return "torch"
    return "probe"


def _python_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "system": platform.system().lower(),
        "machine": platform.machine().lower(),
        "mac_ver": platform.mac_ver()[0] or None,
        # Whether this process runs translated by Rosetta 2 (None: not a Mac, or unknown).
        "translated": None,
    }
    if facts["system"] == "darwin":
        facts["translated"] = _sysctl_flag("sysctl.proc_translated")
    return facts


def _sysctl_flag(name: str) -> bool | None:
    try:
        out = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # The key is missing (non-zero exit) on Intel Macs, where nothing is ever translated.
    return out.returncode == 0 and out.stdout.strip() == "1"


def _nvidia_driver() -> dict[str, Any]:
    """The kernel driver's version and the newest CUDA it supports, as this process sees them.

    The CUDA version is what conda uses for ``__cuda``: ``cuDriverGetVersion`` from libcuda
    (conda's ``conda/plugins/virtual_packages/cuda.py``; conda documentation, "Managing virtual
    packages"); it needs no ``cuInit`` and so no visible GPU.
    """
    facts: dict[str, Any] = {"version": None, "cuda": None, "error": None}
    for path in ("/sys/module/nvidia/version", "/proc/driver/nvidia/version"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
        if match:
            facts["version"] = match.group(1)
            break
    if sys.platform.startswith("linux"):
        try:
            libcuda = ctypes.CDLL("libcuda.so.1")
            version = ctypes.c_int(0)
            if libcuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
                facts["cuda"] = f"{version.value // 1000}.{(version.value % 1000) // 10}"
        except (OSError, AttributeError) as exc:
            facts["error"] = _error_text(exc)
    return facts


def _import_torch() -> tuple[dict[str, Any], Any]:
    _stage("importing torch")
    facts: dict[str, Any] = {"imported": False, "error": None, "import_seconds": None}
    started = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import torch
    except BaseException as exc:  # a broken install raises anything, SystemExit included
        facts["error"] = _error_text(exc)
        facts["traceback"] = traceback.format_exc(limit=4)[-2000:]
        return facts, None
    facts["import_seconds"] = round(time.perf_counter() - started, 3)
    facts.update(
        imported=True,
        version=str(getattr(torch, "__version__", "") or ""),
        # __file__ is None for a namespace package: a directory named torch without
        # __init__.py (a leftover, or a checkout on the path) shadowing the real one.
        file=getattr(torch, "__file__", None),
        path=_package_dir(torch),
        cuda=getattr(getattr(torch, "version", None), "cuda", None),
        hip=getattr(getattr(torch, "version", None), "hip", None),
        debug=bool(getattr(getattr(torch, "version", None), "debug", False)),
        warnings=[str(w.message) for w in caught],
    )
    return facts, torch


def _package_dir(module: Any) -> str | None:
    locations = list(getattr(module, "__path__", None) or ())
    if locations:
        return str(locations[0])
    file = getattr(module, "__file__", None)
    return str(Path(file).parent) if file else None


# What the probe (and any training script) uses of torch. A module named torch that lacks
# these is not a working PyTorch: a stand-in, a half-deleted install, a namespace package.
TORCH_API = (
    "__version__",
    "version.cuda",
    "tensor",
    "zeros",
    "randn",
    "device",
    "Generator",
    "float32",
    "float64",
    "nn.functional.conv2d",
    "cuda.is_available",
    "backends.cudnn",
    "ops",
)


def _missing_api(torch: Any) -> list[str]:
    missing = []
    for dotted in TORCH_API:
        target = torch
        try:
            for part in dotted.split("."):
                target = getattr(target, part)
        except Exception:  # AttributeError, or a lazy submodule whose import fails
            missing.append("torch." + dotted)
    return missing


def _backends(torch: Any, facts: dict[str, Any]) -> None:
    """Builds and availability of each backend, and the error torch gives when one is absent."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cudnn = None
        try:
            cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        except Exception as exc:
            facts["cudnn_error"] = _error_text(exc)
        facts["cudnn"] = cudnn
        try:
            facts["arch_list"] = list(torch.cuda.get_arch_list())
        except Exception:
            facts["arch_list"] = []
        facts["cuda_available"] = bool(torch.cuda.is_available())
        facts["cuda_device_count"] = (
            int(torch.cuda.device_count()) if facts["cuda_available"] else 0
        )
        facts["cuda_error"] = None
        if not facts["cuda_available"]:
            # is_available() only says False; making a tensor says why ("Found no NVIDIA
            # driver", "driver too old", "Torch not compiled with CUDA enabled").
            facts["cuda_error"] = _first_error(lambda: torch.zeros(1, device="cuda"))
        mps = getattr(torch.backends, "mps", None)
        facts["mps_built"] = bool(mps is not None and mps.is_built())
        facts["mps_available"] = bool(mps is not None and mps.is_available())
        facts["mps_error"] = None
        if facts["mps_built"] and not facts["mps_available"]:
            facts["mps_error"] = _first_error(lambda: torch.zeros(1, device="mps"))
    facts["warnings"] = facts.get("warnings", []) + [str(w.message) for w in caught]
    facts["num_threads"] = torch.get_num_threads()
    facts["distributed"] = _distributed_backends(torch)


def _distributed_backends(torch: Any) -> dict[str, Any]:
    """Whether this build has torch.distributed and which backends (the collective check)."""
    dist: Any = getattr(torch, "distributed", None)
    facts: dict[str, Any] = {"available": False, "nccl": False, "gloo": False}
    try:
        facts["available"] = bool(dist is not None and dist.is_available())
        if dist is not None and facts["available"]:
            facts["nccl"] = bool(dist.is_nccl_available())
            facts["gloo"] = bool(dist.is_gloo_available())
    except Exception as exc:
        facts["error"] = _error_text(exc)
    return facts


def _first_error(action: Callable[[], object]) -> str | None:
    try:
        action()
    except Exception as exc:
        return _error_text(exc)
    return None


def _cuda_devices(torch: Any, facts: dict[str, Any]) -> list[dict[str, Any]]:
    devices = []
    for index in range(facts.get("cuda_device_count") or 0):
        entry: dict[str, Any] = {
            "index": index,
            "name": None,
            "capability": None,
            "memory_mib": None,
        }
        try:
            props = torch.cuda.get_device_properties(index)
            entry["name"] = props.name
            entry["capability"] = f"{props.major}.{props.minor}"
            entry["memory_mib"] = int(props.total_memory // (1024 * 1024))
            entry["multiprocessors"] = props.multi_processor_count
        except Exception as exc:
            entry["error"] = _error_text(exc)
        devices.append(entry)
    facts["peer_access"] = _peer_access(torch, len(devices))
    return devices


def _peer_access(torch: Any, count: int) -> list[list[bool | None]] | None:
    """``torch.cuda.can_device_access_peer(a, b)`` for every ordered pair (None: it raised)."""
    if count < 2:
        return None
    matrix: list[list[bool | None]] = []
    for a in range(count):
        row: list[bool | None] = []
        for b in range(count):
            try:
                row.append(True if a == b else bool(torch.cuda.can_device_access_peer(a, b)))
            except Exception:
                row.append(None)
        matrix.append(row)
    return matrix


def _disable_tf32(torch: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Turn TF32 off for the check, remembering the user's settings.

    On Ampere and newer, cuDNN convolutions use TF32 by default (torch.backends.cudnn.allow_tf32
    is True), which rounds inputs to a 10-bit mantissa: results then differ from float32 by
    ~1e-3 relative. The check asks "does this device compute float32 correctly", so it compares
    true float32 against a tight tolerance instead of loosening the tolerance until it also
    hides real errors. TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 forces TF32 in cuBLAS whatever the
    flag says, and a torch whose flags do not read back False may still use it; either way
    ``tf32_possible`` is recorded so the tolerance can allow for TF32 instead of failing.
    """
    state: dict[str, Any] = {
        "matmul_was": None,
        "cudnn_was": None,
        "forced_by_env": os.environ.get("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE") == "1",
        "tf32_possible": True,
    }
    with warnings.catch_warnings():
        # Newer torch deprecates the allow_tf32 flags in favour of fp32_precision; the old
        # flags still work across every release this probe meets, so use them quietly.
        warnings.simplefilter("ignore")
        try:
            state["matmul_was"] = bool(torch.backends.cuda.matmul.allow_tf32)
            state["cudnn_was"] = bool(torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            still_on = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
            state["tf32_possible"] = bool(still_on) or state["forced_by_env"]
        except Exception as exc:
            state["error"] = _error_text(exc)
    facts["tf32"] = dict(state)
    return state


def _restore_tf32(torch: Any, state: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if state["matmul_was"] is not None:
                torch.backends.cuda.matmul.allow_tf32 = state["matmul_was"]
            if state["cudnn_was"] is not None:
                torch.backends.cudnn.allow_tf32 = state["cudnn_was"]
        except Exception:
            pass


def _synchronize(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _timed(torch: Any, device: Any, work: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``work`` once cold and WARM_REPEATS times warm; the device is synchronized first."""
    _synchronize(torch, device)
    start = time.perf_counter()
    result = work()
    _synchronize(torch, device)
    first = time.perf_counter() - start
    warm = []
    for _ in range(WARM_REPEATS):
        start = time.perf_counter()
        result = work()
        _synchronize(torch, device)
        warm.append(time.perf_counter() - start)
    return result, first, min(warm)


def _compare(torch: Any, got: Any, reference: Any) -> dict[str, Any]:
    """Largest difference from the float64 CPU reference, and the reference's scale."""
    got = got.detach().to("cpu", torch.float64)
    finite = bool(torch.isfinite(got).all())
    scale = float(reference.abs().max())
    error = float((got - reference).abs().max()) if finite else None
    return {"max_abs_error": error, "reference_max_abs": scale, "finite": finite}


def _placement(torch: Any, name: str, tf32: dict[str, Any]) -> dict[str, Any]:
    """A tensor made on the CPU moves to ``name``; a conv and a matmul there match the CPU.

    The reference is the same work on the CPU in float64 from the same float32 inputs, so the
    difference measures only the device's float32 arithmetic (for the CPU too). MPS has no
    float64, so the device side is float32 everywhere.
    """
    entry: dict[str, Any] = {
        "device": name,
        "dtype": "float32",
        "reference": "cpu float64",
        "tf32": bool(name.startswith("cuda") and tf32.get("tf32_possible")),
        "stage": "move",
        "moved_to": None,
        "error": None,
        "conv": None,
        "matmul": None,
    }
    try:
        device = torch.device(name)
        generator = torch.Generator().manual_seed(0)
        marker = torch.arange(12, dtype=torch.float32).reshape(3, 4)
        moved = marker.to(device)
        entry["moved_to"] = str(moved.device)
        entry["round_trip_equal"] = bool(torch.equal(moved.cpu(), marker))

        entry["stage"] = "conv"
        x = torch.randn(CONV_INPUT, generator=generator)
        w = torch.randn(CONV_WEIGHT, generator=generator)
        reference = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
        xd, wd = x.to(device), w.to(device)
        out, first, warm = _timed(
            torch, device, lambda: torch.nn.functional.conv2d(xd, wd, padding=1)
        )
        entry["conv"] = dict(_compare(torch, out, reference), first_s=first, warm_s=warm)

        entry["stage"] = "matmul"
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=generator)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=generator)
        reference = a.double() @ b.double()
        ad, bd = a.to(device), b.to(device)
        out, first, warm = _timed(torch, device, lambda: ad @ bd)
        entry["matmul"] = dict(_compare(torch, out, reference), first_s=first, warm_s=warm)
        entry["stage"] = "done"
    except Exception as exc:
        entry["error"] = _error_text(exc)
    return entry


def _torchvision_location() -> dict[str, Any]:
    """Whether torchvision is installed, where, and its version: no import, no torch needed."""
    import importlib.util

    facts: dict[str, Any] = {
        "found": False,
        "version": None,
        "path": None,
        "ops_loaded": False,
        "ops_error": None,
        "ops_checked": False,
        "cuda": None,
        "nms": {},
    }
    try:
        spec = importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return facts
    package_dir = next(iter(spec.submodule_search_locations))
    facts.update(found=True, path=package_dir, version=_torchvision_version(package_dir))
    return facts


def _torchvision_ops(torch: Any, devices: list[str], facts: dict[str, Any]) -> None:
    """Whether torchvision's compiled ops load into this torch, and nms runs on each device.

    ``import torchvision`` would pull in torch._dynamo (over a second on a small CPU); its
    failure mode for a mismatched build ("operator torchvision::nms does not exist") comes from
    its compiled ops failing to load, which this checks directly, with the loader's own error
    (usually an undefined symbol) instead of the symptom.
    """
    if not facts["found"]:
        return
    facts["ops_checked"] = True
    library = _torchvision_library(facts["path"])
    if library is None:
        facts["ops_error"] = "no compiled ops library (_C_stable or _C) in " + facts["path"]
        return
    try:
        torch.ops.load_library(library)
        facts["ops_loaded"] = True
    except Exception as exc:
        facts["ops_error"] = _error_text(exc)
        return
    try:
        facts["cuda"] = int(torch.ops.torchvision._cuda_version())
    except Exception:
        facts["cuda"] = None
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    for name in devices:
        try:
            kept = torch.ops.torchvision.nms(boxes.to(name), scores.to(name), 0.5)
            # The second box overlaps the first (IoU 0.68) and must be suppressed.
            facts["nms"][name] = {"ok": kept.cpu().tolist() == [0, 2], "error": None}
        except Exception as exc:
            facts["nms"][name] = {"ok": False, "error": _error_text(exc)}


def _torchvision_library(package_dir: str) -> str | None:
    import importlib.machinery

    finder = importlib.machinery.FileFinder(
        package_dir,
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )
    # torchvision 0.29 builds its ops against torch's stable ABI (_C_stable); older ones: _C.
    for name in ("_C_stable", "_C"):
        found = finder.find_spec(name)
        if found is not None:
            return found.origin
    return None


def _torchvision_version(package_dir: str) -> str | None:
    # version.py in releases; a bare __version__ in __init__.py in some builds and stand-ins.
    for name in ("version.py", "__init__.py"):
        try:
            text = (Path(package_dir) / name).read_text()
        except OSError:
            continue
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        if match:
            return match.group(1)
    try:
        from importlib.metadata import version

        return version("torchvision")
    except Exception:
        return None


if __name__ == "__main__":
    code = main()
    # Skip interpreter teardown: unloading torch takes about a second on a small CPU and the
    # JSON is already written (unbuffered, with os.write).
    sys.stderr.flush()
    os._exit(code)
