import math

import pytest
import torch

import model.seed_batch as seed_batch
from model.config import RunConfig
from model.seed_batch import train_seeds
from model.train import SMOKE_OVERRIDES, train

SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def one_thread():
    # As in a trial: another thread count sums in another order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(**overrides) -> RunConfig:
    return RunConfig().with_overrides({**SMOKE_OVERRIDES, "epochs": 2, "patience": 1, "diagnostics_every": 1,
                                       **overrides})


@pytest.mark.parametrize(("architecture", "task_loss"), [("crocodile", "per_domain"), ("stem", "per_domain"),
                                                        ("mmoe", "global")])
def test_batched_seeds_end_where_the_sequential_runs_end(tiny, architecture, task_loss):
    cfg = config(architecture=architecture, task_loss=task_loss)
    alone = {seed: train(cfg.with_overrides({"seed": seed}), tiny, dtype=torch.float64) for seed in SEEDS}
    ended = []
    batched = train_seeds(cfg, tiny, SEEDS, dtype=torch.float64, on_seed_end=lambda seed, result: ended.append(seed))
    assert sorted(ended) == list(SEEDS)
    for seed in SEEDS:
        a, b = alone[seed], batched[seed]
        assert (b.best_epoch, b.epochs_run) == (a.best_epoch, a.epochs_run)
        assert b.metrics == pytest.approx(a.metrics, abs=1e-6, nan_ok=True)
        assert b.diagnostics == pytest.approx(a.diagnostics, abs=1e-6, nan_ok=True) and b.spectra.keys() == a.spectra.keys()
        assert [h["train_loss"] for h in b.history] == pytest.approx([h["train_loss"] for h in a.history], abs=1e-9)
        for name, tensor in a.best_state.items():
            assert torch.allclose(b.best_state[name].double(), tensor.double(), atol=1e-8), name
        assert [e["epoch"] for e in b.diagnostics_epochs] == [e["epoch"] for e in a.diagnostics_epochs]
        assert b.diagnostics_epochs[0] == pytest.approx(a.diagnostics_epochs[0], abs=1e-6, nan_ok=True)
    # The seeds really differ (each its own init and data order).
    assert len({round(batched[s].metrics["test_auc_overall"], 6) for s in SEEDS}) == 3


def test_a_seed_that_goes_nan_fails_alone(tiny, monkeypatch):
    real = seed_batch.model_for

    def poisoned(cfg, data):
        model = real(cfg, data)
        if cfg.train.seed == 1:
            with torch.no_grad():
                next(model.parameters()).fill_(math.nan)
        return model

    monkeypatch.setattr(seed_batch, "model_for", poisoned)
    cfg = config()
    batched = train_seeds(cfg, tiny, SEEDS, dtype=torch.float64)
    assert isinstance(batched[1], FloatingPointError) and "training loss is nan in epoch 1" in str(batched[1])
    for seed in (0, 2):
        alone = train(cfg.with_overrides({"seed": seed}), tiny, dtype=torch.float64)
        assert batched[seed].metrics == pytest.approx(alone.metrics, abs=1e-6, nan_ok=True)


def test_seeds_stop_early_on_their_own(tiny):
    cfg = config(epochs=4, patience=1, lr=0.05)
    batched = train_seeds(cfg, tiny, SEEDS)
    for seed in SEEDS:
        result = batched[seed]
        assert result.epochs_run == len(result.history) and result.best_epoch <= result.epochs_run
        assert result.epochs_run == 4 or result.epochs_run - result.best_epoch == 1


def test_bad_seed_lists_and_cpu_compile_are_refused(tiny):
    with pytest.raises(ValueError, match=r"seeds must be distinct and at least one, but got seeds=\(1, 1\)"):
        train_seeds(config(), tiny, (1, 1))
    with pytest.raises(ValueError, match="compile=true needs a CUDA device"):
        train_seeds(config(compile=True), tiny, SEEDS)


def test_cli_trains_a_seed_batch(capsys):
    from model.train import main

    assert main(["--smoke-test", "seed_batch=2"]) == 0
    out = capsys.readouterr().out
    assert "seed 0 test metrics" in out and "seed 1 test metrics" in out and "2 seeds together" in out
    assert main(["--smoke-test", "seed_batch=x"]) == 2
    assert "seed_batch must be an integer >= 1, but got seed_batch='x'" in capsys.readouterr().err
