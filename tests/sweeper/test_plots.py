"""Plot helpers that decide what a figure shows."""
import pandas as pd

from sweeper import plots


def deltas(widths: dict[str, float]) -> pd.DataFrame:
    rows = [{"variant": "A", "reference": "R", "metric": "gauc", "domain": d, "n": 6, "ref_n": 6, "delta": 0.001,
             "ci_low": 0.001 - w / 2, "ci_high": 0.001 + w / 2, "test": "paired t", "p_adjusted": 0.5,
             "significant": False} for d, w in widths.items()]
    return pd.DataFrame(rows)


def test_tail_domains_do_not_set_the_y_scale():
    frame = deltas({"S0": 0.004, "S1": 0.006, "S6": 0.8, "overall": 0.002})
    assert plots.scale_domains(frame, "gauc", ["S0", "S1", "S6", "overall"]) == ["S0", "S1", "overall"]


def test_without_an_overall_ci_every_domain_sets_the_scale():
    frame = deltas({"S0": 0.004, "S6": 0.8, "overall": float("nan")})
    assert plots.scale_domains(frame, "gauc", ["S0", "S6", "overall"]) == ["S0", "S6", "overall"]


def test_delta_plot_draws_with_a_clipped_tail(tmp_path):
    frame = deltas({"S0": 0.004, "S6": 0.8, "overall": 0.002})
    path = plots.plot_deltas(frame, ["gauc"], ["S0", "S6", "overall"], tmp_path / "d.png", "t")
    assert path.stat().st_size > 5000
