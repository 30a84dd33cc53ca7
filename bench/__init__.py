"""The bundled MNIST timing benchmark: the seed experiment, faithfully, plus two fast loops.

Runs as ``python -m bench`` in any environment that has torch; ``setup-tool bench`` runs it
that way inside the target environment. This package never imports ``setup_tool``, and this
module and ``bench.report`` never import torch, so the CLI can read results without it.

    bench.cli        argv → BenchConfig, one-line errors, exit codes
    bench.config     the frozen run configuration and its validation
    bench.data       the bundled MNIST: checksums, torchvision or an equivalent dataset
    bench.model      the seed's CNN (3,535,446 parameters)
    bench.devices    device names → torch devices, synchronize, device facts
    bench.loops      seed (faithful), fast and throughput training loops
    bench.run        warm-up, timed epochs, evaluation, Ctrl-C, one result per device
    bench.results    the versioned result JSON (schema in README.md) and the seed's .txt
    bench.report     result files → comparison rows and PNG plots (matplotlib, no torch)
    bench.sweep      several fast/throughput variants in one process, for tuning
"""

from __future__ import annotations

SCHEMA = "setup-tool.bench"
SCHEMA_VERSION = 1

__all__ = ["SCHEMA", "SCHEMA_VERSION"]
