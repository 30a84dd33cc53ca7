"""Is torch usable in this environment? Checked before the first module that needs it is
imported, so a missing or broken torch is one ``error:`` line with its fix, not a traceback
from deep inside a run (``AttributeError: module 'torch' has no attribute 'device'``).

"Broken" here means what a stub or a half-removed install looks like: ``import torch`` raises,
or the module lacks the attributes every loop uses.
"""

from __future__ import annotations

import sys

from .errors import BenchError

# What every loop touches first; a real torch has all of them.
REQUIRED = ("device", "__version__", "tensor", "zeros", "manual_seed", "nn", "optim", "cuda")
REINSTALL = (
    "the environment's torch is broken: reinstall it (`setup-tool env` rebuilds the "
    "environment it made; elsewhere `python -m pip install --force-reinstall torch`)"
)


def require_torch() -> None:
    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":  # torch is there, one of its own imports is missing
            raise _broken(f"importing it failed ({exc})") from None
        raise BenchError(
            f"torch is not installed in {sys.prefix}",
            "run the benchmark in an environment with torch: `setup-tool env` makes one, or "
            "pass --python / --prefix",
        ) from None
    except Exception as exc:  # a broken install can raise anything at import
        raise _broken(f"importing it raised {type(exc).__name__}: {_first_line(exc)}") from None
    missing = [name for name in REQUIRED if not hasattr(torch, name)]
    if missing:
        where = getattr(torch, "__file__", None) or "a namespace package"
        raise _broken(f"module 'torch' has no attribute {missing[0]!r} ({where})")


def _broken(why: str) -> BenchError:
    return BenchError(f"torch in {sys.prefix} is broken: {why}", REINSTALL)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
