"""``python -m setup_tool``: the same entry point as the ``setup-tool`` console script."""

from __future__ import annotations

from setup_tool.cli import main

if __name__ == "__main__":
    main()
