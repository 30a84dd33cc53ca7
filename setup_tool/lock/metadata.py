"""setup-tool's own keys in a lockfile's ``custom_metadata``, and what they tell a later run.

conda-lock writes ``metadata.channels`` (the channels a lock was solved from) itself; setup-tool
adds, under ``custom_metadata`` (free-form strings that conda-lock keeps and ignores):

    setup-tool.variant                  cuda, mps or cpu
    setup-tool.virtual-packages.<plat>  the virtual packages that platform was solved with
    setup-tool.channels-from            ``override`` when ``--channel`` or SETUP_TOOL_CHANNEL
                                        replaced the spec's channels, else ``spec``

With ``override``, ``lock``, ``lock --check`` and ``env`` use the recorded channels until told
otherwise (``--channel``, SETUP_TOOL_CHANNEL): a lock made from a mirror stays on that mirror.
A lock without the key (older, or written by conda-lock) is taken as locked from its spec.
"""

from __future__ import annotations

from pathlib import Path

from setup_tool.lock import condalock
from setup_tool.lock.channels import Channels, recorded_channels

CUSTOM_VARIANT = "setup-tool.variant"
CUSTOM_VIRTUAL = "setup-tool.virtual-packages."  # + platform
CUSTOM_CHANNELS_FROM = "setup-tool.channels-from"


def channels_from(channels: Channels) -> str:
    """The ``setup-tool.channels-from`` value for a lock made from ``channels``."""
    return "override" if channels.overridden else "spec"


def recorded_override(path: Path, shown: str) -> Channels | None:
    """The channels the lockfile at ``path`` was made from, if they replaced the spec's."""
    metadata = condalock.read_metadata(path)
    if metadata is None:
        return None
    custom = metadata.get("custom_metadata") or {}
    if not isinstance(custom, dict) or custom.get(CUSTOM_CHANNELS_FROM) != "override":
        return None
    urls = [c.get("url") if isinstance(c, dict) else c for c in metadata.get("channels") or []]
    if not urls or not all(isinstance(u, str) and u for u in urls):
        return None
    return recorded_channels([str(u) for u in urls], shown)
