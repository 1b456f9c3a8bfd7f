"""Tuned studies without Ray: the schema, the jobs a rerun still needs, the choice, the report's table."""
import json

import pandas as pd
import pytest

from sweeper import tuned
from sweeper.space import SpaceError, parse_space
from sweeper.schema import row_schema
from sweeper.store import ResultsStore
from sweeper.trial import _identity

BASE = {"epochs": 1}


def space(**changes):
    raw = {"study": "tuned", "seeds": [0, 1], "tuning": {"budget": 2, "seeds": [100, 101]},
           "variants": [{"name": "Base", "set": {"aux_loss": "none"}},
                        {"name": "+Cov", "set": {"aux_loss": "cov"}, "tune": {"alpha": [0.01, 0.1]}},
                        {"name": "+Dot", "set": {"aux_loss": "dot"}, "tune": {"alpha": [0.001, 0.0001]}}],
           "base": BASE, **changes}
    return parse_space(raw, "t.yaml")


@pytest.mark.parametrize("changes,message", [
    ({"tuning": {"budget": 3, "seeds": [100]}}, "variants\\[1\\].tune: has 2 configurations, but every tuned row "
                                                 "gets the same budget tuning.budget=3"),
    ({"tuning": {"budget": 2, "seeds": [1, 100]}}, "tuning.seeds: must be disjoint from the replicate seeds"),
    ({"tuning": {"budget": 2, "seeds": [100], "metric": "test_auc_overall"}}, "never tune on test"),
    ({"tuning": {"budget": 2}}, "tuning.seeds: must be a non-empty list"),
    ({"tuning": {"budget": 2, "seeds": [100], "rounds": 3}}, "tuning.rounds: unknown key"),
    ({"tuning": None}, "a tuned study needs a `tuning:` mapping"),
    ({"variants": [{"name": "A", "set": {"alpha": 0.1}, "tune": {"alpha": [0.1, 1.0]}}]},
     "tune.alpha: is also set by the variant"),
    ({"variants": [{"name": "A"}]}, "needs at least one row with a `tune:` grid"),
    ({"variants": [{"name": "A", "tune": {"alpha": [-1.0, 1.0]}}]}, "alpha must be a finite number >= 0"),
])
def test_bad_tuned_files_name_the_key(changes, message):
    with pytest.raises(SpaceError, match=message):
        space(**changes)


def test_tune_and_tuning_belong_to_tuned_studies():
    with pytest.raises(SpaceError, match="only the rows of a tuned study"):
        parse_space({"variants": [{"name": "A", "tune": {"alpha": [0.1]}}]}, "t.yaml")
    with pytest.raises(SpaceError, match="only a tuned study has a tuning budget"):
        parse_space({"variants": [{"name": "A"}], "tuning": {"budget": 1, "seeds": [9]}}, "t.yaml")


def _run(variant_name, factors, seed, status="ok", score=0.6):
    from sweeper.trial import Job

    job = Job(sweep="s", study="tuning", variant=variant_name, factors=factors, base=BASE, seeds=(seed,),
              data="synthetic:tiny", sweep_uri="")
    return {**_identity(job, seed, job.config(seed).flat()), "status": status,
            "val_auc_overall": score if status == "ok" else float("nan")}


def test_jobs_cover_rows_by_budget_by_tuning_seeds_and_a_rerun_skips_finished_runs(tmp_path):
    s = space()
    jobs, skipped = tuned.tuning_jobs(s, BASE, "synthetic:tiny", str(tmp_path))
    assert (len(jobs), skipped) == (2 * 2 * 2, 0)
    assert {j.variant for j in jobs} == {"+Cov [alpha=0.01]", "+Cov [alpha=0.1]", "+Dot [alpha=0.001]",
                                         "+Dot [alpha=0.0001]"}
    assert all(j.sweep_uri == tuned.tuning_uri(str(tmp_path)) and j.objective == "val_auc_overall" for j in jobs)
    store = ResultsStore(tuned.tuning_uri(str(tmp_path)))
    schema = row_schema(("S0", "S1", "S2", "S4", "S6"), True)
    store.write_row(_run("x", {"aux_loss": "cov", "alpha": 0.01}, 100), schema)
    store.write_row(_run("x", {"aux_loss": "cov", "alpha": 0.01}, 101, status="failed"), schema)
    jobs, skipped = tuned.tuning_jobs(s, BASE, "synthetic:tiny", str(tmp_path))
    assert (len(jobs), skipped) == (6, 2)
    jobs, skipped = tuned.tuning_jobs(s, BASE, "synthetic:tiny", str(tmp_path), rerun_failed=True)
    assert (len(jobs), skipped) == (7, 1)


def test_the_choice_is_the_best_mean_over_finished_tuning_seeds():
    s = space()
    runs = pd.DataFrame([
        _run("x", {"aux_loss": "cov", "alpha": 0.01}, 100, score=0.70),
        _run("x", {"aux_loss": "cov", "alpha": 0.01}, 101, score=0.60),  # mean 0.65
        _run("x", {"aux_loss": "cov", "alpha": 0.1}, 100, score=0.66),  # 101 failed: mean over one seed
        _run("x", {"aux_loss": "cov", "alpha": 0.1}, 101, status="failed"),
        _run("x", {"aux_loss": "cov", "alpha": 0.1}, 7, score=0.99),  # not a tuning seed: ignored
        _run("x", {"aux_loss": "dot", "alpha": 0.001}, 100, status="failed"),
    ])
    choices = tuned.choose(s, BASE, runs)
    assert choices["+Cov"].chosen == {"alpha": 0.1}
    assert [(p.score, p.seeds_ok) for p in choices["+Cov"].points] == [(pytest.approx(0.65), 2), (0.66, 1)]
    assert choices["+Dot"].chosen is None and choices["+Dot"].tried == 0
    variants, left_out = tuned.resolved(s, choices)
    assert [v.name for v in variants] == ["Base", "+Cov"] and left_out == ["+Dot"]
    assert variants[1].factors == {"aux_loss": "cov", "alpha": 0.1} and variants[1].tune == {}
    minimise = space(tuning={"budget": 2, "seeds": [100, 101], "mode": "min"})
    assert tuned.choose(minimise, BASE, runs)["+Cov"].chosen == {"alpha": 0.01}


def test_ties_go_to_the_first_configuration_and_the_choices_render(tmp_path):
    s = space()
    runs = pd.DataFrame([_run("x", {"aux_loss": "cov", "alpha": a}, seed, score=0.6)
                         for a in (0.01, 0.1) for seed in (100, 101)])
    choices = tuned.choose(s, BASE, runs)
    assert choices["+Cov"].chosen == {"alpha": 0.01}
    tuned.write_choices(str(tmp_path), s, choices)
    record = json.loads((tmp_path / tuned.CHOICES_FILE).read_text())
    assert record["budget"] == 2 and record["seeds"] == [100, 101]
    frame = tuned.choices_frame(tmp_path)
    assert list(frame["configuration"]) == ["alpha=0.01", "alpha=0.1", "alpha=0.001", "alpha=0.0001"]
    assert list(frame["chosen"]) == ["yes", "", "", ""] and list(frame["tuning seeds ok"])[:2] == ["2/2", "2/2"]
    assert tuned.choices_frame(tmp_path / "nothing") is None
