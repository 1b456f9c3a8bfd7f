"""Importances over the searched parameters only, with their trial count and caution."""
import optuna
import pytest

from sweeper import optuna_report


def journal_study(tmp_path, trials: int):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "j.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    distributions = {"alpha": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
                     "aux_rows": optuna.distributions.CategoricalDistribution([256])}
    for index in range(trials):
        alpha = 10 ** (-4 + 4 * index / max(trials - 1, 1))
        study.add_trial(optuna.trial.create_trial(params={"alpha": alpha, "aux_rows": 256}, distributions=distributions,
                                                  value=0.7 + 0.01 * index))
    return path


def test_a_constant_parameter_is_not_ranked_and_few_trials_carry_a_caution(tmp_path):
    result = optuna_report.optuna_importances(journal_study(tmp_path, 5), "s", seeds_per_trial=1)
    assert list(result.frame["parameter"]) == ["alpha"]
    assert "over 5 completed trials (1 seed(s) each)" in result.note and "Not searched" in result.note
    assert "aux_rows" in result.note
    assert result.caution.startswith("Caution: only 5 completed trials (fewer than 20)")


def test_enough_trials_need_no_caution(tmp_path):
    result = optuna_report.optuna_importances(journal_study(tmp_path, 20), "s", seeds_per_trial=3)
    assert result.caution == "" and "(3 seed(s) each)" in result.note


def test_optuna_plots_are_drawn_without_plotly(tmp_path):
    made, note = optuna_report.optuna_plots(journal_study(tmp_path, 5), "s", tmp_path)
    assert note == "" and [p.png.name for p in made] == ["optuna_history.png", "optuna_parallel.png",
                                                         "optuna_slice.png"]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # set_metric_names, as the runner
def test_optuna_plots_name_the_objective(tmp_path, monkeypatch):
    import optuna.visualization.matplotlib as optuna_plt

    path = journal_study(tmp_path, 3)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    optuna.load_study(study_name="s", storage=storage).set_metric_names(["val_auc_overall"])
    names = []
    for plot in ("plot_optimization_history", "plot_parallel_coordinate", "plot_slice"):
        def spy(*args, original=getattr(optuna_plt, plot), **kwargs):
            names.append(kwargs.get("target_name"))
            return original(*args, **kwargs)
        monkeypatch.setattr(optuna_plt, plot, spy)
    made, _ = optuna_report.optuna_plots(path, "s", tmp_path)
    assert len(made) == 3 and names == ["val_auc_overall"] * 3  # not Optuna's "Objective Value"
