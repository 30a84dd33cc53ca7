"""setup-tool's own keys in a lockfile's ``custom_metadata``, and what they tell a later run.

conda-lock writes ``metadata.channels`` (the channels a lock was solved from) itself; setup-tool
adds, under ``custom_metadata`` (free-form strings that conda-lock keeps and ignores):

    setup-tool.variant                  cuda, mps or cpu
    setup-tool.virtual-packages.<plat>  the virtual packages that platform was solved with
    setup-tool.channels-from            ``override`` when ``--channel`` or SETUP_TOOL_CHANNEL
                                        replaced the spec's channels, else ``spec``
    setup-tool.pip-indexes              the wheel indexes of the pip section, highest
                                        priority first, separated by spaces (conda-lock
                                        records none; only locks with a pip section)
    setup-tool.pip-indexes-from         ``override`` (--pip-index-url or
                                        SETUP_TOOL_PIP_INDEX_URL) or ``spec``
    setup-tool.torch-from               ``conda-forge`` or ``wheels`` (``torch_source.py``):
                                        read back unless ``--torch-from`` says otherwise

With ``override``, ``lock``, ``lock --check`` and ``env`` use the recorded channels (indexes)
until told otherwise (``--channel``, SETUP_TOOL_CHANNEL; ``--pip-index-url``,
SETUP_TOOL_PIP_INDEX_URL): a lock made from a mirror stays on that mirror. A lock without the
key (older, or written by conda-lock) is taken as locked from its spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setup_tool.lock import condalock
from setup_tool.lock.channels import Channels, recorded_channels
from setup_tool.lock.pip_indexes import PipIndexes, recorded_indexes
from setup_tool.lock.torch_source import TORCH_SOURCES

CUSTOM_VARIANT = "setup-tool.variant"
CUSTOM_VIRTUAL = "setup-tool.virtual-packages."  # + platform
CUSTOM_CHANNELS_FROM = "setup-tool.channels-from"
CUSTOM_PIP_INDEXES = "setup-tool.pip-indexes"
CUSTOM_PIP_INDEXES_FROM = "setup-tool.pip-indexes-from"
CUSTOM_TORCH_FROM = "setup-tool.torch-from"


@dataclass(frozen=True)
class Recorded:
    """What an existing lockfile says about the sources it was made from, if they were
    overrides (None: the spec's, or nothing recorded)."""

    channels: Channels | None = None
    pip_indexes: PipIndexes | None = None
    torch_from: str | None = None


def channels_from(channels: Channels | PipIndexes) -> str:
    """The ``...-from`` value for a lock made from ``channels`` (or pip indexes)."""
    return "override" if channels.overridden else "spec"


def custom_entries(
    channels: Channels, pip_indexes: PipIndexes | None, torch_from: str
) -> dict[str, str]:
    """The custom metadata that records where a lock's sources came from."""
    entries = {CUSTOM_CHANNELS_FROM: channels_from(channels), CUSTOM_TORCH_FROM: torch_from}
    if pip_indexes is not None:
        entries[CUSTOM_PIP_INDEXES] = " ".join(pip_indexes.urls)
        entries[CUSTOM_PIP_INDEXES_FROM] = channels_from(pip_indexes)
    return entries


def read_recorded(path: Path, shown: str) -> Recorded:
    """The overrides the lockfile at ``path`` was made from (cheap: its metadata only)."""
    metadata = condalock.read_metadata(path)
    if metadata is None:
        return Recorded()
    custom = metadata.get("custom_metadata") or {}
    if not isinstance(custom, dict):
        return Recorded()
    pip = None
    if custom.get(CUSTOM_PIP_INDEXES_FROM) == "override":
        pip = recorded_indexes(str(custom.get(CUSTOM_PIP_INDEXES, "")), shown)
    channels = None
    if custom.get(CUSTOM_CHANNELS_FROM) == "override":
        channels = _recorded_channels(metadata, shown)
    torch_from = custom.get(CUSTOM_TORCH_FROM)
    return Recorded(channels, pip, torch_from if torch_from in TORCH_SOURCES else None)


def _recorded_channels(metadata: dict[str, Any], shown: str) -> Channels | None:
    listed = metadata.get("channels")
    if not isinstance(listed, list):
        return None
    urls = [c.get("url") if isinstance(c, dict) else c for c in listed]
    if not urls or not all(isinstance(u, str) and u for u in urls):
        return None
    return recorded_channels([str(u) for u in urls], shown)
