"""The one CUDA compatibility rule (setup_tool.cuda_compat): minor-version compatibility."""

from __future__ import annotations

import pytest

from setup_tool import cuda_compat
from setup_tool.cuda_compat import check


@pytest.mark.parametrize("driver", ["12.0", "12.4", "12.8"])
def test_an_older_minor_of_the_same_major_fits_with_a_warning(driver: str) -> None:
    fit = check("12.9", driver)
    assert fit.fits
    assert fit.rule == cuda_compat.RULE_MINOR_COMPAT
    assert fit.warning is not None
    assert "PTX JIT" in fit.warning and "newer driver" in fit.warning
    assert fit.minimum_driver == "575.51.03"  # the driver that supports 12.9 fully


@pytest.mark.parametrize(
    ("build", "driver"), [("12.9", "12.9"), ("12.9", "13.0"), ("13.0", "13.1")]
)
def test_a_driver_of_the_build_cuda_or_newer_fits_without_warning(build: str, driver: str) -> None:
    fit = check(build, driver)
    assert (fit.fits, fit.rule, fit.warning) == (True, cuda_compat.RULE_FULL_SUPPORT, None)


@pytest.mark.parametrize(
    ("build", "driver", "minimum"),
    [("12.9", "11.8", "525.60.13"), ("13.0", "12.9", "580"), ("12", "11.4", "525.60.13")],
)
def test_an_older_major_does_not_fit_and_names_the_driver(
    build: str, driver: str, minimum: str
) -> None:
    fit = check(build, driver)
    assert not fit.fits
    assert fit.rule == cuda_compat.RULE_DRIVER_TOO_OLD
    assert fit.minimum_driver == minimum
    assert minimum in fit.reason


def test_no_driver_does_not_fit() -> None:
    fit = check("12.9", None)
    assert (fit.fits, fit.rule, fit.minimum_driver) == (
        False,
        cuda_compat.RULE_NO_DRIVER,
        "525.60.13",
    )


def test_cuda_11_0_drivers_predate_minor_version_compatibility() -> None:
    assert not check("11.8", "11.0", driver_version="450.36.06").fits
    assert check("11.8", "11.0", driver_version="450.80.02").fits


def test_a_major_alone_is_a_lower_bound() -> None:
    assert check("12", "12.0").rule == cuda_compat.RULE_FULL_SUPPORT
    assert check("13", "12.9").rule == cuda_compat.RULE_DRIVER_TOO_OLD


def test_unreadable_versions_are_reported_not_raised() -> None:
    assert check("twelve", "12.4").rule == cuda_compat.RULE_UNREADABLE
    assert check("12.9", "x").rule == cuda_compat.RULE_UNREADABLE


def test_driver_tables() -> None:
    assert cuda_compat.cuda_from_driver("550.54.15") == "12.4"
    assert cuda_compat.cuda_from_driver("580.65.06") == "13.0"
    assert cuda_compat.cuda_from_driver("410.48") is None
    assert cuda_compat.min_driver_for("12.9") == "575.51.03"
    assert cuda_compat.min_driver_for("12.9.1") == "575.51.03"
    assert cuda_compat.minimum_driver_for_major(12) == "525.60.13"
    assert check("12.9", "12.4").to_json()["rule"] == "cuda-minor-version-compatibility"
