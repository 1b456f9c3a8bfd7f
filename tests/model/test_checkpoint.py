"""Resume from a per-epoch TrainState ends exactly where an uninterrupted run ends; best-epoch model
artefacts reload through `python -m model.train --eval`."""
import pytest
import torch

from model.checkpoint import TrainState, artefact_bytes, load_artefact
from model.config import RunConfig
from model.train import SMOKE_OVERRIDES, main, train

FAST = {**SMOKE_OVERRIDES, "num_embeddings": 2, "expert_hidden": (16, 8), "batch_size": 4096}


def same(a: dict, b: dict) -> bool:
    """Equal keys and exactly equal values (NaN equals NaN: an undefined tail-domain gAUC)."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


def untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in ("epoch_train_s", "samples_per_s")} for h in history]


def test_a_run_resumed_from_any_epoch_ends_with_the_uninterrupted_metrics(tiny):
    config = RunConfig().with_overrides({**FAST, "epochs": 3, "patience": 3})
    states: list[bytes] = []
    full = train(config, tiny, on_state=lambda s: states.append(s.to_bytes()))
    assert len(states) == 3 and full.resumed_from_epoch == 0
    for saved in states[:2]:
        state = TrainState.from_bytes(saved)
        resumed = train(config, tiny, resume=state)
        assert resumed.resumed_from_epoch == state.epoch
        assert same(resumed.metrics, full.metrics)  # exactly: same batches, same optimiser state
        assert all(same(a, b) for a, b in zip(untimed(resumed.history), untimed(full.history), strict=True))
        assert (resumed.best_epoch, resumed.epochs_run) == (full.best_epoch, full.epochs_run)
        for key, value in full.best_state.items():
            assert torch.equal(value, resumed.best_state[key]), key


def test_resuming_from_the_state_that_ended_the_run_trains_no_more(tiny):
    config = RunConfig().with_overrides({**FAST, "epochs": 2, "patience": 2})
    last: list[TrainState] = []
    full = train(config, tiny, on_state=lambda s: last.append(TrainState.from_bytes(s.to_bytes())))
    epochs = []
    again = train(config, tiny, resume=last[-1], on_epoch=lambda e, r: epochs.append(e))
    assert epochs == [] and same(again.metrics, full.metrics) and again.epochs_run == full.epochs_run


def test_resume_refuses_another_config(tiny):
    config = RunConfig().with_overrides({**FAST, "epochs": 1})
    states = []
    train(config, tiny, on_state=states.append)
    state = TrainState.from_bytes(states[0].to_bytes())
    with pytest.raises(ValueError, match=r"another config \(differs in \['lr'\]\)"):
        train(config.with_overrides({"lr": 0.01}), tiny, resume=state)


def test_eval_reloads_a_stored_model_and_reproduces_its_metrics(tiny, tmp_path, capsys):
    config = RunConfig().with_overrides({**FAST, "epochs": 1})
    result = train(config, tiny)
    path = tmp_path / "m.pt"
    path.write_bytes(artefact_bytes(result.best_state, config.flat(), vocab_sizes=tiny.vocab_sizes,
                                    domain_names=tiny.domain_names, field_names=tiny.field_names,
                                    data="synthetic:tiny", metrics=result.metrics, epoch=result.best_epoch))
    assert load_artefact(path)["epoch"] == result.best_epoch
    assert main(["--eval", str(path)]) == 0
    out = capsys.readouterr().out
    drift = float(out.split("largest difference from the metrics stored with the model: ")[1].split()[0])
    assert drift < 1e-6 and "S6" in out

    path.write_bytes(path.read_bytes()[:100])
    assert main(["--eval", str(path)]) == 2
    assert "is not a readable model file" in capsys.readouterr().err
    assert main(["--eval", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
