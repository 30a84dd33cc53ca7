"""The end-to-end test's wheel set (``tests/e2ewheels.py``): complete, verified, and loud when
it is missing."""

from __future__ import annotations

import shutil
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from e2ewheels import FETCH, build_e2e_index, cached_wheels, pins
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def _requires(wheel: Path) -> list[Requirement]:
    """A wheel's Requires-Dist that apply here without extras (its own dist-info only)."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [
            n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        message = Parser().parsestr(archive.read(metadata).decode())
    requirements = [Requirement(line) for line in message.get_all("Requires-Dist") or ()]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def test_the_pinned_wheels_hold_every_requirement_of_torch_and_its_dependencies() -> None:
    wheels = cached_wheels()
    by_name = {canonicalize_name(w.pin.name): Version(w.pin.version) for w in wheels}
    assert by_name["torch"] == Version("2.13.0+cpu")
    assert "torchvision" not in by_name
    for wheel in wheels:
        for requirement in _requires(wheel.path):
            name = canonicalize_name(requirement.name)
            assert name in by_name, f"{wheel.path.name} needs {requirement}, which is not pinned"
            assert requirement.specifier.contains(by_name[name], prereleases=True), (
                f"{wheel.path.name} needs {requirement}; pinned {by_name[name]}"
            )


def test_a_missing_cache_fails_and_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        cached_wheels(tmp_path / "nothing-here")
    message = str(failed.value)
    assert FETCH in message
    assert "torch==2.13.0+cpu" in message


def test_a_wheel_whose_bytes_differ_from_its_pin_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for wheel in cached_wheels():
        if wheel.pin.name != "torch":  # 190 MB: a different file of the same name stands in
            shutil.copy(wheel.path, cache / wheel.path.name)
        else:
            (cache / wheel.path.name).write_bytes(b"not the pinned wheel")
    with pytest.raises(pytest.fail.Exception, match=r"torch==2\.13\.0\+cpu"):
        cached_wheels(cache)


def test_the_index_lists_each_pinned_wheel_with_its_hash(tmp_path: Path) -> None:
    index = build_e2e_index(tmp_path / "simple")
    assert index.url == (tmp_path / "simple").resolve().as_uri()
    for pin in pins():
        page = (tmp_path / "simple" / canonicalize_name(pin.name) / "index.html").read_text()
        assert f"#sha256={pin.sha256}" in page
