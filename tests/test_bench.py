"""The benchmark package on the CPU with the real bundled MNIST: model, data, the faithful
loop, the result schema, reproducibility, bad input and Ctrl-C.

Runs are short (``--max-steps``) but real: real torch, real data, real files on disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from setup_tool_bench import SCHEMA, SCHEMA_VERSION  # noqa: E402
from setup_tool_bench.cli import main  # noqa: E402
from setup_tool_bench.data import BUNDLED_DIR, IdxMnist, faithful_datasets, load_arrays, verify  # noqa: E402
from setup_tool_bench.errors import DataError  # noqa: E402
from setup_tool_bench.model import SEED_PARAMETERS, SeedNet, parameter_count  # noqa: E402

SHORT = ["--device", "cpu", "--max-steps", "4", "--warmup-steps", "1", "--test-limit", "64"]


@pytest.fixture(autouse=True)
def _bench_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decompressed MNIST goes to one temporary cache per test session, not ~/.cache."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "bench-cache"))


def run_bench(tmp_path: Path, *args: str) -> list[dict]:
    code = main([*SHORT, "--results-dir", str(tmp_path), *args])
    assert code == 0
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]


def test_model_has_the_seeds_parameter_count() -> None:
    assert parameter_count(SeedNet()) == SEED_PARAMETERS == 3_535_446
    assert parameter_count(SeedNet(softmax_output=False)) == SEED_PARAMETERS


def test_model_outputs_probabilities_only_in_the_seed_form() -> None:
    x = torch.rand(3, 1, 28, 28)
    model = SeedNet().eval()
    probabilities = model(x)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(3))
    model.softmax_output = False
    assert torch.allclose(torch.softmax(model(x), dim=1), probabilities)


def test_bundled_data_verifies_and_has_mnist_shapes() -> None:
    files = verify()
    assert {p.name for p in files.values()} == {p.name for p in BUNDLED_DIR.glob("*.gz")}
    arrays = load_arrays(files)
    assert tuple(arrays.train_images.shape) == (60_000, 28, 28)
    assert tuple(arrays.test_images.shape) == (10_000, 28, 28)
    assert arrays.train_images.dtype == torch.uint8
    assert sorted(arrays.train_labels.unique().tolist()) == list(range(10))


def test_a_damaged_data_file_is_named(tmp_path: Path) -> None:
    for gz in BUNDLED_DIR.glob("*.gz"):
        shutil.copy(gz, tmp_path / gz.name)
    damaged = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz fails its checksum"):
        verify(tmp_path)


def test_fallback_dataset_gives_torchvisions_tensors() -> None:
    files = verify()
    torchvision_data = faithful_datasets(files)
    assert torchvision_data.source == "torchvision.datasets.MNIST"
    fallback = faithful_datasets(files, use_torchvision=False)
    assert isinstance(fallback.train, IdxMnist)
    for index in (0, 1, 59_999):
        image, label = torchvision_data.train[index]
        same_image, same_label = fallback.train[index]
        assert image.dtype == same_image.dtype == torch.float32
        assert torch.equal(image, same_image)
        assert label == same_label


def test_short_seed_run_writes_a_versioned_result(tmp_path: Path) -> None:
    (result,) = run_bench(tmp_path, "--epochs", "2", "--label", "test-box")
    assert result["schema"] == SCHEMA and result["schema_version"] == SCHEMA_VERSION
    assert result["complete"] is True and result["interrupted"] is False
    assert result["seed_comparable"] is False  # cut short by --max-steps
    assert result["config"]["loop"] == "seed" and result["config"]["batch_size"] == 16
    assert result["loop"]["dataset"] == "torchvision.datasets.MNIST"
    assert result["machine"]["label"] == "test-box"
    assert result["device"]["type"] == "cpu"
    assert result["torch"]["version"] == torch.__version__
    assert result["warmup"]["steps"] == 1
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    for epoch in result["epochs"]:
        assert epoch["steps"] == 4 and epoch["samples"] == 64
        assert epoch["samples_per_second"] == pytest.approx(64 / epoch["seconds"])
        assert 0 < epoch["step_ms"]["p50"] <= epoch["step_ms"]["max"]
        assert 0 <= epoch["accuracy"] <= 1
    summary = result["summary"]
    assert summary["epochs_completed"] == 2 and summary["test_samples"] == 64
    assert summary["peak_rss_bytes"] < 2 * 2**30  # the faithful CPU run stays under 2 GiB
    txt = tmp_path / f"{result['run_id']}.txt"
    seconds = [float(line) for line in txt.read_text().splitlines()]
    assert seconds == pytest.approx([e["seconds"] for e in result["epochs"]], rel=1e-5)


def test_same_seed_gives_the_same_first_losses(tmp_path: Path) -> None:
    (first,) = run_bench(tmp_path / "a", "--seed", "7")
    (second,) = run_bench(tmp_path / "b", "--seed", "7", "--warmup-steps", "3")
    (other,) = run_bench(tmp_path / "c", "--seed", "8")
    losses = first["epochs"][0]["first_losses"]
    assert len(losses) == 4
    assert second["epochs"][0]["first_losses"] == pytest.approx(losses, abs=1e-6)
    assert other["epochs"][0]["first_losses"] != pytest.approx(losses, abs=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda"], "--device cuda: CUDA is not available here"),
        (["--batch-size", "0"], "--batch-size must be a positive integer, not 0"),
        (["--epochs", "-1"], "--epochs must be a positive integer"),
        (["--loop", "turbo"], "invalid choice: 'turbo'"),
        (["--data-dir", "/nonexistent"], "--data-dir /nonexistent: no such directory"),
    ],
    ids=["unknown-device", "no-cuda", "batch-zero", "epochs-negative", "bad-loop", "no-data-dir"],
)
def test_bad_input_is_one_error_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if args[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) if "--loop" in args else _no_exit():
        code = main(["--results-dir", str(tmp_path), *args])
        assert code in (1, 2)
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert err.splitlines()[0].startswith("error: ")
    assert not list(tmp_path.glob("*.json"))


class _no_exit:  # reads like pytest.raises at the call site
    def __enter__(self) -> None: ...
    def __exit__(self, *exc: object) -> bool:
        return False


def test_unwritable_results_directory_fails_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([*SHORT, "--results-dir", str(blocker / "results")]) == 1
    err = capsys.readouterr().err
    assert "is not writable" in err and "epoch" not in err


def test_ctrl_c_saves_finished_epochs_marked_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from setup_tool_bench.loops.seed import SeedTrainer

    real = SeedTrainer.train_epoch

    def interrupted_in_epoch_two(self, epoch, progress):  # type: ignore[no-untyped-def]
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, epoch, progress)

    monkeypatch.setattr(SeedTrainer, "train_epoch", interrupted_in_epoch_two)
    assert main([*SHORT, "--epochs", "3", "--results-dir", str(tmp_path)]) == 130
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert result["complete"] is False and result["interrupted"] is True
    assert [e["epoch"] for e in result["epochs"]] == [1]
    assert result["summary"]["test_accuracy"] is None


def test_a_short_run_evaluates_on_as_many_test_images_as_it_trained_on(tmp_path: Path) -> None:
    args = ["--device", "cpu", "--loop", "fast", "--max-steps", "3", "--warmup-steps", "0"]
    assert main([*args, "--results-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert result["config"]["test_limit"] == 1000 and result["config"]["test_limit_auto"]
    assert result["summary"]["test_samples"] == 1000  # 3 x 16 trained: the floor of 1000


def test_the_short_run_test_limit_follows_the_samples_trained() -> None:
    from setup_tool_bench.config import make_config

    assert make_config("fast", max_steps=50).test_limit == 1000  # 800 samples trained
    assert make_config("fast", max_steps=200).test_limit == 3200
    assert make_config("throughput", max_steps=50).test_limit == 10_000  # capped at the set
    assert make_config("fast", max_steps=50, test_limit=64).test_limit == 64  # as asked
    assert not make_config("fast", max_steps=50, test_limit=64).test_limit_auto
    assert make_config("fast").test_limit is None  # a whole epoch: the whole test set


def test_an_error_inside_torch_is_one_line_and_keeps_the_finished_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from setup_tool_bench.loops.resident import ResidentTrainer

    real = ResidentTrainer.train_epoch

    def fails_in_epoch_two(self, epoch, progress):  # type: ignore[no-untyped-def]
        if epoch < 2:
            return real(self, epoch, progress)
        progress.start_epoch(epoch, 4, 16)
        progress.update(3)
        raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")

    monkeypatch.setattr(ResidentTrainer, "train_epoch", fails_in_epoch_two)
    args = [*SHORT, "--loop", "fast", "--epochs", "3", "--results-dir", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (error_line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert error_line == (
        "error: the fast loop failed on cpu in the epoch 2, step 3: "
        "RuntimeError: CUDA error: device-side assert triggered"
    )
    assert "hint: CUDA reports errors late: rerun with CUDA_LAUNCH_BLOCKING=1" in err
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert result["complete"] is False and result["interrupted"] is False
    assert [e["epoch"] for e in result["epochs"]] == [1]
    assert result["error"]["phase"] == "epoch 2" and result["error"]["step"] == 3
    assert "fails_in_epoch_two" in result["error"]["traceback"]
