"""``setup-tool env`` (``make env``): detect → lock if missing or stale → install → doctor.

Each step prints one line and hands its result to the next; every step is itself a no-op when
nothing changed, so a rerun is quick (the doctor's ``import torch`` dominates it). The first
failing step's error and exit code end the run.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from setup_tool.cli.app import app, fail
from setup_tool.cli.options import PrefixOption, VariantOption
from setup_tool.errors import UnsupportedPlatform
from setup_tool.paths import shown_path
from setup_tool.terminal import Terminal, escape
from setup_tool.variants import VariantChoice


@app.command()
def env(
    variant: VariantOption = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            help="Channel to lock from instead of conda-forge (mirror, file:// or http(s):// "
            "URL); repeatable. Default: $SETUP_TOOL_CHANNEL. Only used when a lock is needed.",
        ),
    ] = None,
    prefix: PrefixOption = None,
    doctor: Annotated[
        bool, typer.Option("--doctor/--no-doctor", help="Run the doctor's check at the end.")
    ] = True,
) -> None:
    """Make this machine's PyTorch environment: detect, lock if needed, install, check.

    Locking needs the channel (conda-forge, or --channel); installing needs the lock's
    package URLs. With the lock up to date and the environment installed, a rerun changes
    nothing.
    """
    from setup_tool.cli.doctor import render_doctor
    from setup_tool.cli.install import RichInstallProgress, install_request, usage_hint
    from setup_tool.cli.lock import RichLockProgress
    from setup_tool.detect import detect, overrides_from
    from setup_tool.doctor import run_doctor
    from setup_tool.install import install
    from setup_tool.lock import check_lock, lock_variant
    from setup_tool.paths import project_root

    terminal = Terminal()
    root = project_root()

    # 1. detect
    detection = detect(overrides_from(variant, os.environ), os.environ)
    target = detection.target
    if target.variant is None:
        raise UnsupportedPlatform(
            f"no variant supports this machine: {target.reason}",
            "`setup-tool detect --sources` shows what was found; --variant forces one",
        )
    chosen = target.variant
    terminal.step(
        f"detect: [bold]{chosen.value}[/] (from {escape(target.variant_source)}): "
        f"{escape(target.reason)}"
    )
    for warning in target.warnings:
        terminal.warn(escape(warning))

    # 2. lock, only when missing or stale
    check = check_lock(root, chosen, channels=channel)
    lockfile = check.path
    shown = shown_path(lockfile, root)
    if check.up_to_date:
        terminal.step(f"lock: {shown} is up to date")
    else:
        why = check.problem or f"stale for {', '.join(check.stale_platforms)}"
        terminal.step(f"lock: {shown} is {escape(why)}; locking (this needs the channel) ...")
        lock_variant(root, chosen, channels=channel, progress=RichLockProgress(terminal))

    # 3. install
    request = install_request(detection, lockfile=lockfile, prefix=prefix)
    result = install(request, RichInstallProgress(terminal))
    terminal.step(
        f"install: {shown_path(result.prefix, root)} "
        + ("is up to date" if result.status == "up-to-date" else "installed")
        + f" ({result.seconds:.1f} s)"
    )

    # 4. doctor
    if not doctor:
        terminal.show(usage_hint(result))
        return
    with terminal.status("doctor: checking the accelerator (imports torch) ..."):
        report = run_doctor(
            python=None,
            prefix=result.prefix,
            expect=VariantChoice(chosen.value),
            root=root,
            environ=os.environ,
        )
    if report.exit_code:
        render_doctor(report, terminal)
        fail(report.exit_code)
    terminal.step(f"doctor: {escape(report.summary)}")
    terminal.show(usage_hint(result))
