"""The machine a pip solve targets: one conda platform, its virtual packages, the Python the
conda solve chose. Everything the pip side needs to know about it, from the same facts the
conda solve used, never the locking machine's.

- ``uv_platform``: uv's ``--python-platform`` and the environment it reads with it. Linux
  wheels are matched against the manylinux tag of the lock's ``__glibc`` (PEP 600:
  ``manylinux_2_28`` runs on glibc 2.28 and newer), macOS ones against ``__osx`` through
  ``MACOSX_DEPLOYMENT_TARGET``, which uv reads for ``aarch64-apple-darwin`` (uv's
  "Resolution" docs, platform-specific resolution).
- ``markers``: the PEP 508 environment markers of the target (for a wheel's
  ``Requires-Dist``), as ``conda_lock.pypi_solver.PlatformEnv.get_marker_env`` sets them, plus
  ``platform_machine``.
- ``wheel_tags``: the tags a wheel may carry to install there, best first
  (``packaging.tags``), to choose among several wheels of one version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from setup_tool.errors import UsageError
from setup_tool.virtual_packages import VirtualPackage

# conda subdir → (uv's target triple stem, `platform_machine`, `sys_platform`, `platform_system`)
# uv's targets: `uv pip compile --help`, --python-platform; machines: PEP 508 / `uname -m`.
PLATFORMS: dict[str, tuple[str, str, str, str]] = {
    "linux-64": ("x86_64", "x86_64", "linux", "Linux"),
    "linux-aarch64": ("aarch64", "aarch64", "linux", "Linux"),
    "osx-arm64": ("aarch64", "arm64", "darwin", "Darwin"),
}
# The manylinux glibc minors uv has a --python-platform for (uv 0.9+): <arch>-manylinux_2_N.
UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)


@dataclass(frozen=True)
class PipTarget:
    """One platform of a lock, as the pip solve sees it."""

    platform: str  # conda subdir
    python: str  # the conda solve's python version, e.g. "3.12.8"
    virtual_packages: tuple[VirtualPackage, ...]

    def _virtual(self, name: str) -> str | None:
        return next((vp.version for vp in self.virtual_packages if vp.name == name), None)

    @property
    def python_tag(self) -> str:
        major, minor = self.python.split(".")[:2]
        return f"cp{major}{minor}"

    def uv_platform(self) -> tuple[str, dict[str, str]]:
        """``--python-platform`` for uv, and the environment variables that go with it."""
        if self.platform not in PLATFORMS:
            raise UsageError(
                f"pip packages cannot be locked for {self.platform}",
                f"lock pip sections for {', '.join(PLATFORMS)} only",
            )
        stem = PLATFORMS[self.platform][0]
        if self.platform.startswith("osx-"):
            return f"{stem}-apple-darwin", {
                "MACOSX_DEPLOYMENT_TARGET": self._virtual("__osx") or "11.0"
            }
        return f"{stem}-manylinux_2_{self._manylinux_minor()}", {}

    def _manylinux_minor(self) -> int:
        glibc = self._virtual("__glibc") or "2.17"
        minor = int(glibc.split(".")[1]) if "." in glibc else 17
        return max((m for m in UV_MANYLINUX if m <= minor), default=17)

    def markers(self) -> dict[str, str]:
        """The PEP 508 marker environment of the target."""
        _, machine, sys_platform, system = PLATFORMS[self.platform]
        major_minor = ".".join(self.python.split(".")[:2])
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python,
            "os_name": "posix",
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": system,
            "platform_version": "",
            "python_full_version": self.python,
            "python_version": major_minor,
            "sys_platform": sys_platform,
        }

    def wheel_tags(self) -> list[str]:
        """Every wheel tag that installs on the target, most specific first."""
        from packaging import tags

        version = tuple(int(p) for p in self.python.split(".")[:2])
        machine = PLATFORMS[self.platform][1]
        if self.platform.startswith("osx-"):
            osx = self._virtual("__osx") or "11.0"
            osx_version = tuple(int(p) for p in osx.split(".")[:2])
            platforms: Sequence[str] = list(
                tags.mac_platforms((osx_version[0], osx_version[1]), machine)
            )
        else:
            glibc_minor = int((self._virtual("__glibc") or "2.17").split(".")[1])
            platforms = [f"manylinux_2_{m}_{machine}" for m in range(glibc_minor, 4, -1)]
            platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}"]
            platforms += [f"manylinux1_{machine}", f"linux_{machine}"]
        found = [
            *tags.cpython_tags(version, platforms=platforms),
            *tags.compatible_tags(version, f"cp{version[0]}{version[1]}", platforms),
        ]
        return [str(t) for t in found]
