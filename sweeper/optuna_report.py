"""What a search report shows from its Optuna study: importances with their caveats, Optuna's plots.

Everything here reads the sweep's journal and turns any failure into a note: a damaged journal,
a missing optional library or too few trials never cost the rest of the report.
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# Below this many completed trials, importances mostly rank noise (fANOVA fits a forest to them).
MIN_TRIALS_FOR_IMPORTANCES = 20


@dataclass(frozen=True)
class Importances:
    frame: pd.DataFrame | None  # parameter, importance; None when they could not be computed
    note: str
    caution: str = ""  # shown next to the numbers when they rest on few trials


@dataclass(frozen=True)
class OptunaPlot:
    title: str
    png: Path


def load_study(storage_path: Path | None, study_name: str | None):
    """(study, None) or (None, note why not); never creates a journal."""
    if storage_path is None:
        return None, "No Optuna storage declared in sweep.json (optuna_storage is null)."
    if not storage_path.is_file():
        # Checked first: JournalFileBackend would create an empty journal at a wrong path.
        return None, f"Optuna journal {storage_path} does not exist; no importances."
    try:
        import optuna

        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage_path)))
        return optuna.load_study(study_name=study_name, storage=storage), None
    except Exception as error:  # a report must not die on a damaged or incompatible journal
        return None, f"Importances unavailable: {type(error).__name__}: {error}"


def completed_trials(study) -> list:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def varying_params(study) -> list[str]:
    """Parameters that took more than one value over the completed trials: the searched ones."""
    values: dict[str, set] = {}
    for trial in completed_trials(study):
        for name, value in trial.params.items():
            values.setdefault(name, set()).add(repr(value))
    return [name for name, seen in values.items() if len(seen) > 1]


def optuna_importances(storage_path: Path | None, study_name: str | None, seeds_per_trial: int = 1) -> Importances:
    """Parameter importances from the sweep's Optuna journal; failures become a note, never an error."""
    study, problem = load_study(storage_path, study_name)
    if study is None:
        return Importances(None, problem)
    try:
        import optuna

        completed = completed_trials(study)
        if len(completed) < 2:
            return Importances(None, f"Only {len(completed)} completed Optuna trial(s); importances need at least 2.")
        searched = varying_params(study)
        constant = sorted(set().union(*(t.params for t in completed)) - set(searched))
        if not searched:
            return Importances(None, "No parameter varied across the completed trials; no importances.")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=searched)
                method = "fANOVA (seed 0)"
            except ImportError:  # fANOVA needs scikit-learn, which the project does not depend on
                values = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=searched)
                method = "PED-ANOVA (scikit-learn not installed, so not fANOVA)"
        if not values:
            return Importances(None, "Optuna returned no importances (no parameter varied across trials).")
        frame = pd.DataFrame({"parameter": list(values), "importance": list(values.values())})
        warned = " ".join(dict.fromkeys(str(w.message) for w in caught if "experimental" not in str(w.message)))
        note = (f"Importances by {method} over {len(completed)} completed trials ({seeds_per_trial} seed(s) each) of "
                f"study {study.study_name!r}." + (f" Not searched (one value in every trial): {', '.join(constant)}."
                                                 if constant else "") + (f" Optuna warned: {warned}" if warned else ""))
        caution = ""
        if len(completed) < MIN_TRIALS_FOR_IMPORTANCES:
            caution = (f"Caution: only {len(completed)} completed trials (fewer than {MIN_TRIALS_FOR_IMPORTANCES}). "
                       f"Importances this early mostly rank noise"
                       + (" and one seed's luck per trial" if seeds_per_trial == 1 else "")
                       + ": do not drop a parameter on their strength.")
        return Importances(frame, note, caution)
    except Exception as error:  # a report must not die on a damaged or incompatible journal
        return Importances(None, f"Importances unavailable: {type(error).__name__}: {error}")


def optuna_plots(storage_path: Path | None, study_name: str | None, out_dir: Path) -> tuple[list[OptunaPlot], str]:
    """Optuna's own optimization history, parallel coordinates and slice plots (matplotlib
    versions: plotly, which Optuna's default plots need, is not a dependency). Returns the plots
    made and a note on any that failed."""
    study, problem = load_study(storage_path, study_name)
    if study is None:
        return [], ""
    if len(completed_trials(study)) < 2:
        return [], "Optuna's plots need at least 2 completed trials."
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display needed; a caller's own pyplot backend is left alone
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as optuna_plt

    searched = varying_params(study)
    # Optuna's plots label the axis "Objective Value" whatever set_metric_names said: name it here.
    target_name = (study.metric_names or ["Objective Value"])[0]
    wanted = [("Optimization history", "optuna_history.png",
               lambda: optuna_plt.plot_optimization_history(study, target_name=target_name)),
              ("Parallel coordinates", "optuna_parallel.png",
               lambda: optuna_plt.plot_parallel_coordinate(study, params=searched, target_name=target_name)),
              ("Slice (objective vs each parameter)", "optuna_slice.png",
               lambda: optuna_plt.plot_slice(study, params=searched, target_name=target_name))]
    made, failed = [], []
    for title, name, draw in wanted:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # every matplotlib plot of Optuna is marked experimental
                axes = draw()
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            if hasattr(axes, "flat"):  # the slice plot: one panel per parameter, room for them all
                figure.set_size_inches(max(4.0 * len(axes.flat), 6.0), 4.0)
            figure.savefig(out_dir / name, dpi=100, bbox_inches="tight")
            plt.close(figure)
            made.append(OptunaPlot(title, out_dir / name))
        except Exception as error:  # noqa: BLE001 - one plot failing must not cost the others
            failed.append(f"{title}: {type(error).__name__}: {error}")
    return made, ("Optuna plots not drawn: " + "; ".join(failed)) if failed else ""
