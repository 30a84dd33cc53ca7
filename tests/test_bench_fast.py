"""The fast loop on the CPU: it computes what the faithful loop computes, it learns, and capture
falls back cleanly where the device has no CUDA graphs."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from setup_tool_bench.config import make_config  # noqa: E402
from setup_tool_bench.data import verify  # noqa: E402
from setup_tool_bench.loops.resident import ResidentTrainer, resolve_capture  # noqa: E402
from setup_tool_bench.loops.seed import SeedTrainer  # noqa: E402
from setup_tool_bench.progress import SilentProgress  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _bench_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "bench-cache"))


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return verify()


def _pair(files: dict[str, Path], loss: str) -> tuple[SeedTrainer, ResidentTrainer]:
    seed = SeedTrainer(make_config("seed", device="cpu", seed=3), CPU, files)
    fast = ResidentTrainer(make_config("fast", device="cpu", seed=3, loss=loss), CPU, files)
    return seed, fast


@pytest.mark.parametrize("loss", ["seed", "logits"])
def test_fast_and_faithful_compute_the_same_step(files: dict[str, Path], loss: str) -> None:
    seed, fast = _pair(files, loss)
    # The same initial weights (same seed), though fast's are channels-last on the CPU.
    for a, b in zip(seed.model.parameters(), fast.model.parameters(), strict=True):
        assert torch.equal(a, b)
    images, labels = next(iter(seed.loader))
    fast_images, fast_labels = fast.batch_for(torch.tensor(0))
    assert torch.equal(images, fast_images) and torch.equal(labels, fast_labels)

    torch.manual_seed(11)  # the same Dropout2d mask in both
    seed_output = seed.model(images)
    seed_loss = seed.criterion(seed_output, labels)
    seed_loss.backward()
    torch.manual_seed(11)
    fast_loss, fast_output = fast.compute_loss(fast_images, fast_labels)
    fast_loss.backward()

    # Channels-last convolutions sum in another order: float32 rounding, no more.
    if loss == "seed":  # the double softmax put back: everything must agree
        assert torch.allclose(fast_output, seed_output, rtol=1e-4, atol=1e-6)
        assert torch.allclose(fast_loss, seed_loss, rtol=1e-5)
    else:  # logits: the faithful output is their softmax; the loss is CE of the logits
        probabilities = torch.softmax(fast_output, dim=1)
        assert torch.allclose(probabilities, seed_output, rtol=1e-4, atol=1e-6)
        expected = torch.nn.functional.cross_entropy(fast_output.detach(), labels)
        assert torch.allclose(fast_loss, expected)
    if loss == "seed":
        # A convolution's bias before BatchNorm has a true gradient of zero (BN removes the
        # mean): both loops get float32 noise there, and Adam scales noise to full-size
        # steps. Those two tensors are left out; every other one must agree.
        pairs = [
            (a, b, a.detach().clone())
            for a, b in zip(seed.model.parameters(), fast.model.parameters(), strict=True)
            if a.grad is not None and float(a.grad.norm()) > 1e-5
        ]
        assert len(pairs) == len(list(seed.model.parameters())) - 2
        for a, b, _ in pairs:
            assert b.grad is not None
            assert _relative(b.grad, a.grad) < 2e-2  # up to 6e-3 seen: small grads, float32
        seed.optimizer.step()  # torch's default Adam against the fused one
        fast.optimizer.step()
        for a, b, p0 in pairs:
            # Adam's first update is about lr * sign(grad): compare the updates, by norm.
            assert _relative(b.detach() - p0, a.detach() - p0) < 1e-2


def _relative(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value - reference).norm() / reference.norm().clamp_min(1e-12))


def test_fast_loop_learns(files: dict[str, Path]) -> None:
    config = make_config("fast", device="cpu", max_steps=80, warmup_steps=1, seed=1)
    trainer = ResidentTrainer(config, CPU, files)
    before, _ = trainer.evaluate(300)
    trainer.warm_up()
    stats = trainer.train_epoch(1, SilentProgress())
    after, tested = trainer.evaluate(300)
    assert stats.steps == 80 and stats.samples == 1280 and tested == 300
    assert stats.loss < 2.0  # from ~2.3, chance level
    assert before < 0.3
    assert after > 0.7


def test_warm_up_restores_the_initial_state(files: dict[str, Path]) -> None:
    config = make_config("fast", device="cpu", max_steps=3, warmup_steps=3, seed=5)
    trainer = ResidentTrainer(config, CPU, files)
    initial = [p.detach().clone() for p in trainer.model.parameters()]
    warm = trainer.warm_up()
    assert warm.steps == 3
    for live, saved in zip(trainer.model.parameters(), initial, strict=True):
        assert torch.equal(live, saved)
    assert int(trainer.counter) == 0
    assert all(
        not value.any()
        for state in trainer.optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )


@pytest.mark.parametrize(
    ("requested", "used"),
    [("auto", "none"), ("graph", "none"), ("compile-graph", "compile"), ("none", "none")],
)
def test_capture_falls_back_on_the_cpu(requested: str, used: str) -> None:
    mode, note = resolve_capture(requested, "fast", CPU)
    assert mode == used
    assert (note is None) == (requested in ("auto", "none"))


def test_graph_capture_request_on_cpu_trains_uncaptured(files: dict[str, Path]) -> None:
    config = make_config("fast", device="cpu", capture="graph", max_steps=2, warmup_steps=1)
    trainer = ResidentTrainer(config, CPU, files)
    trainer.warm_up()
    stats = trainer.train_epoch(1, SilentProgress())
    assert trainer.graph is None
    assert trainer.details["capture_requested"] == "graph"
    assert trainer.details["capture"] == "none"
    assert "needs CUDA graphs" in trainer.details["capture_note"]
    assert stats.steps == 2 and len(stats.step_seconds) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_cuda_graph_capture_replays(files: dict[str, Path]) -> None:
    config = make_config("fast", device="cuda", capture="graph", max_steps=20)
    trainer = ResidentTrainer(config, torch.device("cuda"), files)
    trainer.warm_up()
    stats = trainer.train_epoch(1, SilentProgress())
    assert trainer.graph is not None and stats.steps == 20


def test_the_batch_fetch_wraps_around_an_epoch_of_few_batches(files: dict[str, Path]) -> None:
    """Batch 16384 leaves 3 resident batches. On an H200 the warm-up (3 eager steps, then a
    graph capture and 2 replays) read batch 4: a device-side assert in a compiled kernel. On
    the CPU the same gather past the last batch was an IndexError; now it wraps."""
    config = make_config("throughput", device="cpu", batch_size=16384)
    trainer = ResidentTrainer(config, CPU, files)
    assert trainer.full_steps == 3
    for step in range(7):
        images, labels = trainer.batch_for(torch.tensor(step))
        expected_images, expected_labels = trainer.batch_for(torch.tensor(step % 3))
        assert images.shape == (16384, 1, 28, 28)
        assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)


def test_a_warm_up_longer_than_the_epoch_runs_and_restores(files: dict[str, Path]) -> None:
    config = make_config("fast", device="cpu", max_steps=2, warmup_steps=5, seed=5)
    trainer = ResidentTrainer(config, CPU, files)
    assert trainer.warm_up().steps == 5  # not cut to the 2 steps of an epoch
    assert int(trainer.counter) == 0
    stats = trainer.train_epoch(1, SilentProgress())
    assert stats.steps == 2


def test_building_a_trainer_changes_no_global_setting(files: dict[str, Path]) -> None:
    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    config = make_config("fast", device="cpu", precision="tf32", max_steps=1)
    trainer = ResidentTrainer(config, CPU, files)
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32) == before
    trainer.apply_global_settings()
    assert torch.backends.cuda.matmul.allow_tf32 is True
    trainer.close()
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32) == before


def test_a_data_parallel_run_picks_eager_or_compiled_by_loop_and_is_never_captured() -> None:
    from setup_tool_bench.loops.resident import capture_for

    config = make_config("fast", data_parallel=True, world_size=2)
    mode, note = capture_for(config, torch.device("cuda"))
    assert mode == "none"  # launch-bound batch-16 steps: eager beat compiled on an H200
    assert note is not None and "not captured in a CUDA graph" in note and "no_sync" in note
    throughput = make_config("throughput", data_parallel=True, world_size=2)
    assert capture_for(throughput, torch.device("cuda"))[0] == "compile"
    assert capture_for(config, CPU) == ("none", None)
    explicit = make_config("fast", data_parallel=True, world_size=2, capture="compile")
    assert capture_for(explicit, CPU) == ("compile", None)
    assert capture_for(make_config("fast"), torch.device("cuda"))[0] == "compile-graph"
