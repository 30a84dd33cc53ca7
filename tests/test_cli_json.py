"""``--json`` always prints one JSON document on stdout, refusals included: the same for every
command that has the flag, because the CLI's one error handler (cli/app.py) writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _one_document(stdout: str) -> dict:  # type: ignore[type-arg]
    data = json.loads(stdout)  # raises on two documents or on any text around one
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("args", "env", "code", "kind", "needle"),
    [
        pytest.param(["detect", "--json"], {"CONDA_OVERRIDE_CUDA": "abc"}, 2, "UsageError",
                     "not a CUDA version", id="detect-bad-override"),
        pytest.param(["detect", "--json", "--variant", "rocm"], {}, 2, "UsageError", "rocm",
                     id="detect-bad-flag"),
        pytest.param(["install", "--json", "--lockfile", "/nonexistent/x.yml", "--prefix", "P"],
                     {}, 1, "LockfileInvalid", "not found", id="install-missing-lock"),
        pytest.param(["install", "--bogus", "--json"], {}, 2, "UsageError", "--bogus",
                     id="install-bad-option"),
        pytest.param(["doctor", "--json", "--python", "/nonexistent/python"], {}, None, None,
                     None, id="doctor-bad-python"),
    ],
)  # fmt: skip
def test_refusals_are_one_json_document(cli, tmp_path: Path, args, env, code, kind, needle) -> None:  # type: ignore[no-untyped-def]
    args = [str(tmp_path / "env") if a == "P" else a for a in args]
    result = cli(*args, env=env)
    assert result.exit_code != 0
    data = _one_document(result.stdout)
    assert "Traceback" not in result.output
    if code is None:  # the command's own report (doctor prints its checks even when failing)
        return
    assert result.exit_code == code
    assert data["status"] == "error" and data["schema_version"] == 1
    error = data["error"]
    assert (error["type"], error["exit_code"]) == (kind, code)
    assert needle in error["message"]
    assert error["hint"]
    assert any(line.startswith("error: ") for line in result.stderr.splitlines())


def test_without_json_stdout_stays_empty_on_a_refusal(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("detect", env={"CONDA_OVERRIDE_CUDA": "abc"})
    assert result.exit_code == 2
    assert result.stdout == ""


def test_a_command_that_printed_its_document_gets_no_second_one(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import machines

    monkeypatch.setattr("setup_tool.detect.probe.probe", lambda environ=None: machines.WIN64)
    result = cli("detect", "--json")
    assert result.exit_code == 3
    assert _one_document(result.stdout)["target"]["variant"] == "unsupported"


def test_install_documents_carry_their_schema_version(cli, cpu_lock: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every ``install --json`` document says its schema version, as detect's and doctor's do
    and as the refusals do; a plan with nothing to download counts 0 bytes, not unknown."""
    args = ["install", "--json", "--lockfile", str(cpu_lock), "--prefix", str(tmp_path / "env")]
    documents = [_one_document(cli.ok(*args, *extra).stdout) for extra in (["--dry-run"], [], [])]
    assert [d["status"] for d in documents] == ["dry-run", "installed", "up-to-date"]
    assert [d["schema_version"] for d in documents] == [1, 1, 1]
    up_to_date = documents[2]["plan"]["download"]
    assert (up_to_date["packages"], up_to_date["bytes"]) == (0, 0)
    assert documents[2]["plan"]["pip"]["download"]["bytes"] == 0
