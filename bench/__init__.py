"""The bundled MNIST timing benchmark: the seed experiment, faithfully, plus two fast loops.

The folder ``bench/`` installs as the package ``setup_tool_bench`` (a name no other project
takes); its modules import each other relatively, so ``python -m bench`` from a checkout runs
the same code. It runs in any environment that has torch; ``setup-tool bench`` runs it as
``python -m setup_tool_bench`` inside the target environment. This package never imports
``setup_tool``; this module, ``options``, ``config`` and ``report`` never import torch, so
setup-tool can check options and read results without it.

    bench.cli        argv → BenchConfig, one-line errors, exit codes
    bench.options    every option, defined once (python -m bench and setup-tool bench)
    bench.config     the frozen run configuration and its validation
    bench.data       the bundled MNIST: checksums, torchvision or an equivalent dataset
    bench.model      the seed's CNN (3,535,446 parameters)
    bench.devices    device names → torch devices, synchronize, device facts
    bench.loops      seed (faithful), fast and throughput training loops
    bench.run        warm-up, timed epochs, evaluation, Ctrl-C, one result per device
    bench.results    the versioned result JSON (schema in docs/bench.md) and the seed's .txt
    bench.report     result files → comparison rows and PNG plots (matplotlib, no torch)

The tuning sweep behind the loops' defaults is ``scripts/bench_sweep.py`` (not shipped).
"""

from __future__ import annotations

SCHEMA = "setup-tool.bench"
SCHEMA_VERSION = 1

__all__ = ["SCHEMA", "SCHEMA_VERSION"]
