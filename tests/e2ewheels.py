"""The end-to-end test's wheels: real torch CPU and its dependencies, offline, as a PEP 503 index.

``tests/e2e-wheels.txt`` pins each wheel by version and sha256. ``make e2e-wheels`` (a step of
``make test``) downloads them once into ``.cache/e2e-wheels/``; tests never download. Here:

- ``cached_wheels()`` finds each pinned wheel in the cache by its sha256 (so a half-written or
  replaced file is not used), and fails the test, not skips it, with the command to run when
  one is missing: the end-to-end test is part of ``make test`` and CI.
- ``build_e2e_index(root)`` serves them as a PEP 503 "simple" index (``tests/wheel_index.py``),
  the layout pip and uv read from a ``file://`` URL (https://peps.python.org/pep-0503/).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from wheel_index import WheelIndex, build_index

REPO_ROOT = Path(__file__).resolve().parent.parent
PINS = REPO_ROOT / "tests" / "e2e-wheels.txt"
CACHE = REPO_ROOT / ".cache" / "e2e-wheels"
FETCH = "make e2e-wheels"
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)\s+--hash=sha256:(?P<sha>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Wheel:
    pin: Pin
    path: Path

    @property
    def project(self) -> str:
        """PEP 503's normalized name: runs of ``-_.`` become ``-``, lower case."""
        return re.sub(r"[-_.]+", "-", self.pin.name).lower()


def pins() -> tuple[Pin, ...]:
    """The pinned wheels of ``tests/e2e-wheels.txt``, in file order."""
    found = []
    for raw in PINS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"{PINS.name}: not `name==version --hash=sha256:...`: {line}"
        found.append(Pin(match["name"], match["version"], match["sha"]))
    return tuple(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_wheels(cache: Path = CACHE) -> tuple[Wheel, ...]:
    """Each pin's wheel in ``cache``, matched by sha256; ``pytest.fail`` naming what is missing
    and how to fetch it."""
    wanted = {pin.sha256: pin for pin in pins()}
    found: dict[str, Wheel] = {}
    for path in sorted(cache.glob("*.whl")) if cache.is_dir() else ():
        # File names first (cheap), then the hash of the candidates only.
        stem = path.name.split("-")
        for pin in wanted.values():
            same_name = re.sub(r"[-_.]+", "_", pin.name).lower() == stem[0].lower()
            if same_name and stem[1] == pin.version and _sha256(path) == pin.sha256:
                found[pin.sha256] = Wheel(pin, path)
    missing = [pin.requirement for sha, pin in wanted.items() if sha not in found]
    if missing:
        pytest.fail(
            f"the end-to-end test's wheels are not in {cache} (missing or different: "
            f"{', '.join(missing)}); fetch them once with `{FETCH}` (it needs PyPI and the torch "
            f"CPU wheel; see docs/testing.md)",
            pytrace=False,
        )
    return tuple(found[pin.sha256] for pin in pins())


def build_e2e_index(root: Path, cache: Path = CACHE) -> WheelIndex:
    """The pinned wheels as a PEP 503 index at ``root`` (``tests/wheel_index.py``: a copy of
    each wheel, its hash in the link, PEP 658 metadata beside it)."""
    return build_index(root, [wheel.path for wheel in cached_wheels(cache)])
