"""setup-tool: the right PyTorch build for this machine, locked, installed, checked and timed.

The package is a thin CLI (``setup_tool.cli``) over command modules that return frozen results.
Nothing here probes the machine or imports heavy libraries at import time.
"""

from __future__ import annotations

__version__ = "0.1.0"
