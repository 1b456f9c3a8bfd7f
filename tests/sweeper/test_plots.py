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


# ---------------------------------------------------------------- mechanism plots (Figs. 2, 4, 5)

from sweeper import mechanism  # noqa: E402

DOMAINS = ["S0", "S6", "overall"]
ARTEFACTS = {("A", s): {"spectra": {"item_id_S6": [0.0, -1.0, -2.0 - s]},
                        "epochs": [{"epoch": e, "ia_expert_S0": 10.0 + e + s, "ia_expert_S6": 5.0 + e} for e in (1, 2)]}
             for s in (0, 1)}
RUNS = pd.DataFrame([{"variant": "A", "seed": s, "ia_item_id_freq1": 8.0 + s, "ia_item_id_freq5": 4.0 + s,
                      "di_S0_S6": 0.3 + 0.1 * s} for s in (0, 1)] +
                    [{"variant": "B", "seed": s, "ia_item_id_freq1": 6.0, "di_S0_S6": 0.2} for s in (0, 1)])


def test_ia_epochs_plot_and_frame(tmp_path):
    frame = mechanism.ia_epochs_frame(ARTEFACTS, ["A", "B"], DOMAINS)
    assert list(frame.columns) == list(mechanism.EPOCH_COLUMNS)
    first = frame[(frame["epoch"] == 1) & (frame["domain"] == "S0")].iloc[0]
    assert (first["n"], first["mean"]) == (2, 11.5)  # seeds 0 and 1: 11 and 12
    assert set(frame["variant"]) == {"A"}  # B has no artefact
    assert plots.plot_ia_epochs(frame, ["A"], DOMAINS, tmp_path / "e.png", "t").stat().st_size > 5000
    assert mechanism.ia_epochs_frame({("A", 0): {"epochs": []}}, ["A"], DOMAINS).empty


def test_ia_frequency_plot_and_frame(tmp_path):
    frame = mechanism.ia_frequency_frame(RUNS, ["A", "B"])
    assert list(frame.columns) == list(mechanism.FREQUENCY_COLUMNS)
    a = frame[frame["variant"] == "A"].set_index("group")
    assert a.loc[1, "mean"] == 8.5 and a.loc[5, "mean"] == 4.5 and list(a.index) == [1, 5]
    assert plots.plot_ia_frequency(frame, tmp_path / "f.png", "t").stat().st_size > 5000
    assert mechanism.ia_frequency_frame(RUNS[["variant", "seed"]], ["A"]).empty


def test_spectra_plot_and_frame(tmp_path):
    frame = mechanism.spectra_frame(ARTEFACTS, ["A", "B"], "item_id_S6")
    assert list(frame.columns) == list(mechanism.SPECTRUM_COLUMNS)
    assert list(frame["x"]) == [1 / 3, 2 / 3, 1.0] and list(frame["mean"]) == [0.0, -1.0, -2.5]
    assert plots.plot_spectra(frame, tmp_path / "s.png", "t", "item_id_S6").stat().st_size > 5000
    assert mechanism.spectra_frame(ARTEFACTS, ["A"], "item_id_S0").empty


def test_di_pairs_plot_and_frame(tmp_path):
    domains = ["S0", "S1", "S6", "overall"]
    assert mechanism.di_pairs(domains) == [("S0", "S1"), ("S0", "S6"), ("S1", "S6")]
    runs = RUNS.assign(di_S0_S1=0.9, di_S1_S6=float("nan"))
    frame = mechanism.di_pairs_frame(runs, ["A", "B"], domains)
    assert list(frame.columns) == list(mechanism.DI_COLUMNS)
    a = frame[frame["variant"] == "A"]
    assert list(a["pair"]) == ["S0-S1", "S0-S6"] and list(a["rank"]) == [1, 2]  # NaN pair left out
    assert a["mean"].iloc[1] == 0.35
    assert plots.plot_di_pairs(frame, tmp_path / "d.png", "t").stat().st_size > 5000


def test_tail_domain_rule():
    runs = pd.DataFrame({"variant": ["A"], "seed": [0]})
    assert mechanism.tail_domain(runs, ["S0", "S1", "S6", "overall"]) == "S6"  # no train counts: the last
    counted = runs.assign(train_rows_S0=10, train_rows_S1=5, train_rows_S6=50)
    assert mechanism.tail_domain(counted, ["S0", "S1", "S6", "overall"]) == "S1"
    assert mechanism.tail_domain(runs, ["overall"]) is None
