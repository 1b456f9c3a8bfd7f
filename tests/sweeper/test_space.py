from pathlib import Path

import pytest
import yaml

from model.config import RunConfig
from sweeper.space import SpaceError, cell_key, load_space, parse_space

SHIPPED = ["table5_ablation", "table6_num_embeddings", "table4_losses", "alpha_sensitivity", "search_crocodile",
           "best_crocodile", "mechanism"]
SPACE_FILES = sorted(p.stem for p in (Path(__file__).parents[2] / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("name", SPACE_FILES)
def test_every_shipped_space_loads_and_its_laptop_profile_runs_to_early_stopping(name):
    for profile in ("laptop", "gpu", "cluster"):
        load_space(name, profile)
    # 10 epochs is a cap the laptop runs stop before (README, "Is a budget converged?"), so the report
    # can tell a data-limited table from an undertrained one.
    laptop = RunConfig().with_overrides(dict(load_space(name, "laptop").base))
    assert laptop.train.epochs >= 10 and laptop.train.patience < laptop.train.epochs


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_load_with_every_profile(name):
    space = load_space(f"search_spaces/{name}.yaml")
    for profile in ("laptop", "gpu", "cluster"):
        load_space(name, profile)
    if space.study == "replicate" and space.base_from is None:
        assert space.comparisons()
    # Every shipped file states its claim up front (a search states that it makes none).
    assert "hypotheses" in yaml.safe_load(open(f"search_spaces/{name}.yaml"))
    assert bool(space.hypotheses) == (space.study in ("replicate", "tuned"))
    # On a GPU a replicate or tuned study trains each variant's seeds as one stacked model.
    assert load_space(name, "gpu").resources.seed_batch == (1 if space.study == "search" else 6)


def test_shipped_hypotheses_are_the_papers_claims():
    def claims(name):
        return [(h.variant, h.references, h.metrics, h.domain) for h in load_space(name).hypotheses]
    both = ("auc", "gauc")
    assert claims("table5_ablation") == [("Crocodile", ("MMoE",), both, "overall")]
    assert claims("table4_losses") == [("+CovLoss", ("Base",), both, "overall")]
    assert claims("table6_num_embeddings") == [(f"Crocodile M={m}", (f"ME-MMoE-PG M={m}",), ("gauc",), "overall")
                                               for m in range(2, 11)]
    assert claims("alpha_sensitivity") == [(f"alpha={a}", ("alpha=0",), both, "overall") for a in ("0.1", "1", "10")]
    assert claims("best_crocodile") == [("best-1", ("MMoE",), both, "overall")]
    assert claims("mechanism") == [("Crocodile", ("ME-MMoE-PEG",), both, "overall")]
    assert load_space("table5_ablation").seed_test == "paired"


def test_table_layouts():
    t5 = load_space("table5_ablation")
    assert [v.name for v in t5.variants] == ["MMoE", "ME-MMoE", "ME-MMoE-PG", "ME-MMoE-PG+Cov", "ME-MMoE-PEG",
                                             "Crocodile"]
    assert all(c["reference"] == "MMoE" for c in t5.comparisons()) and len(t5.comparisons()) == 5
    t6 = load_space("table6_num_embeddings")
    assert len(t6.variants) == 18
    assert {"variant": "Crocodile M=7", "reference": "ME-MMoE-PG M=7"} in t6.comparisons()
    assert {v.x for v in t6.variants} == set(map(float, range(2, 11)))
    alpha = load_space("alpha_sensitivity")
    assert alpha.variants[0].name == "alpha=0" and alpha.variants[0].reference is None
    assert len(t6.seeds) == 6 and load_space("table5_ablation", "laptop").data == "synthetic:tiny"
    search = load_space("search_crocodile").search
    assert {p.name for p in search.params} >= {"alpha", "num_embeddings", "gating", "aux_loss"}


GOOD = {"study": "replicate", "variants": [{"name": "A", "set": {"gating": "pg"}}, {"name": "B"}], "reference": "A"}
SEARCH = {"study": "search", "search": {"params": {"alpha": {"type": "loguniform", "low": 1e-6, "high": 1.0}}}}


@pytest.mark.parametrize("change,message", [
    ({"colour": 1}, "f.yaml: colour: unknown key"),
    ({"seeds": "0,1"}, "f.yaml: seeds: must be a non-empty list"),
    ({"study": "grid"}, "f.yaml: study: must be one of"),
    ({"variants": [{"name": "A", "set": {"gating": "moe"}}]}, "f.yaml: variants\\[0\\].set/grid: unknown gating 'moe'"),
    ({"variants": [{"name": "A", "set": {"alpah": 1}}]}, "unknown config key 'alpah'"),
    ({"variants": [{"name": "A", "grid": {"alpha": []}}]}, "variants\\[0\\].grid.alpha: must be a non-empty list"),
    ({"variants": [{"name": "A"}, {"name": "A"}]}, "repeated: \\['A'\\]"),
    ({"reference": "Z"}, "f.yaml: reference: variant 'A' compares against 'Z', which is not a variant"),
    ({"resources": {"gpus": 1}}, "f.yaml: resources.gpus: unknown key"),
    ({"resources": {"cpus_per_worker": 0}}, "resources.cpus_per_worker: must be > 0"),
    ({"resources": {"seed_batch": 0}}, "f.yaml: resources.seed_batch: must be an integer >= 1, got 0"),
    ({"resources": {"seed_batch": 3, "workers": 1}}, "resources.seed_batch: is 3, but seed batching runs in-process"),
    ({"base": {"epochs": "many"}}, "f.yaml: base: config key 'epochs' expects int"),
    ({"hypotheses": [{"variant": "B", "reference": "Z"}]}, "f.yaml: hypotheses\\[0\\].reference: 'Z' is not a variant"),
    ({"hypotheses": [{"variant": "B", "reference": "A", "domain": "S7"}]},
     "f.yaml: hypotheses\\[0\\].domain: 'S7' is not a domain of synthetic:small"),
    ({"hypotheses": [{"variant": "B", "reference": "A", "metrics": ["logloss"]}]},
     "f.yaml: hypotheses\\[0\\].metrics: must be a non-empty list of the sweep's metrics \\['auc', 'gauc'\\]"),
    ({"hypotheses": [{"variant": "B{x}", "reference": "A"}]}, "f.yaml: hypotheses\\[0\\]: refers to 'x'"),
    ({"hypotheses": [{"variant": "B", "reference": "A"}, {"variant": "B", "reference": "A", "metrics": ["auc"]}]},
     "f.yaml: hypotheses\\[1\\]: repeats B vs A, auc overall, already declared by hypotheses\\[0\\]"),
    ({"hypotheses": {"variant": "B"}}, "f.yaml: hypotheses: must be a list"),
    ({"seed_test": "wilcoxon"}, "f.yaml: seed_test: must be one of \\['paired', 'welch'\\]"),
])
def test_bad_replicate_files_name_file_and_key(change, message):
    with pytest.raises(SpaceError, match=message):
        parse_space({**GOOD, **change}, "f.yaml")


@pytest.mark.parametrize("params,message", [
    ({"alpha": {"type": "loguniform", "low": 1.0, "high": 0.1}}, "search.params.alpha: needs low < high"),
    ({"alpha": {"type": "loguniform", "low": 0.0, "high": 0.1}}, "search.params.alpha.low: must be > 0"),
    ({"gating": {"type": "choice", "values": []}}, "search.params.gating.values: must be a non-empty list"),
    ({"gating": {"type": "choice", "values": ["pg", "xx"]}}, "search.params.gating.values: unknown gating 'xx'"),
    ({"alpah": {"type": "uniform", "low": 0, "high": 1}}, "search.params.alpah: unknown config key"),
    ({"alpha": {"type": "normal", "low": 0, "high": 1}}, "search.params.alpha.type: must be one of"),
    ({"num_embeddings": {"type": "int", "low": 2, "high": 40}}, "num_embeddings must be in"),
])
def test_bad_search_params(params, message):
    with pytest.raises(SpaceError, match=message):
        parse_space({"study": "search", "search": {"params": params}}, "s.yaml")


def test_hypotheses_expand_over_their_grid_and_resolve_all():
    raw = {"study": "replicate",
           "variants": [{"name": f"{s} M={m}", "set": {"num_embeddings": m}} for s in ("PG", "Croc") for m in (2, 3)],
           "hypotheses": [{"variant": "Croc M={m}", "reference": "PG M={m}", "metrics": ["gauc"],
                           "grid": {"m": [2, 3]}},
                          {"variant": "Croc M=3", "reference": "all", "test": "intersection-union",
                           "metrics": ["auc"]}]}
    space = parse_space(raw, "f.yaml")
    assert [(h.variant, h.references) for h in space.hypotheses[:2]] == [("Croc M=2", ("PG M=2",)),
                                                                         ("Croc M=3", ("PG M=3",))]
    assert space.hypotheses[2].references == ("all",)  # resolved when sweep.json is written
    assert space.hypothesis_records()[2]["references"] == ["PG M=2", "PG M=3", "Croc M=2"]


def test_base_from_hypotheses_may_name_the_search_winners():
    raw = {"study": "replicate", "base_from": {"sweep": "s", "top_k": 2}, "reference": "A",
           "variants": [{"name": "A"}], "hypotheses": [{"variant": "best-2", "reference": "A"}]}
    assert parse_space(raw, "f.yaml").hypotheses[0].variant == "best-2"
    raw["hypotheses"] = [{"variant": "best-3", "reference": "A"}]
    with pytest.raises(SpaceError, match="f.yaml: hypotheses\\[0\\].variant: 'best-3' is not a variant"):
        parse_space(raw, "f.yaml")


def test_search_rules():
    with pytest.raises(SpaceError, match="search.metric: must be a validation metric"):
        parse_space({**SEARCH, "search": {**SEARCH["search"], "metric": "test_auc_overall"}}, "s.yaml")
    with pytest.raises(SpaceError, match="search.asha: early stopping needs seeds_per_trial: 1"):
        parse_space({**SEARCH, "search": {**SEARCH["search"], "seeds_per_trial": 2, "asha": {"enabled": True}}}, "s.yaml")
    with pytest.raises(SpaceError, match="use search.params instead"):
        parse_space({**SEARCH, "variants": [{"name": "A"}]}, "s.yaml")
    with pytest.raises(SpaceError, match="s.yaml: hypotheses: a search is exploratory and tests nothing"):
        parse_space({**SEARCH, "hypotheses": [{"variant": "A", "reference": "B"}]}, "s.yaml")
    assert parse_space({**SEARCH, "hypotheses": []}, "s.yaml").hypotheses == ()
    with pytest.raises(SpaceError, match="s.yaml: resources.seed_batch: is 2, but a search trial's seeds run one after"):
        parse_space({**SEARCH, "resources": {"seed_batch": 2}}, "s.yaml")


def test_load_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("study: [unclosed\n")
    with pytest.raises(SpaceError, match="bad.yaml: not valid YAML"):
        load_space(str(path))
    with pytest.raises(SpaceError, match="not found \\(shipped spaces: \\["):
        load_space("no_such_space")
    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(SpaceError, match="no profile 'laptop'"):
        load_space(str(path), "laptop")


def test_cell_key_ignores_the_seed_and_what_is_measured_only():
    a = {"alpha": 0.1, "seed": 0, "expert_hidden": (8, 4), "diagnostics": True, "diagnostics_every": 0}
    assert cell_key(a) == cell_key({**a, "seed": 5})
    assert cell_key(a) == cell_key({**a, "diagnostics_every": 1, "diagnostics": False, "diagnostics_rows": 64})
    assert cell_key(a) != cell_key({**a, "alpha": 0.2})


def test_hypothesis_records_check_the_final_variants():
    raw = {"study": "replicate", "base_from": {"sweep": "s", "top_k": 2}, "reference": "A",
           "variants": [{"name": "A"}], "hypotheses": [{"variant": "best-2", "reference": "A"}]}
    space = parse_space(raw, "f.yaml")
    with pytest.raises(SpaceError, match="f.yaml: hypotheses\\[0\\].variant: 'best-2' is not a variant"):
        space.hypothesis_records()  # the search found only one configuration
def test_a_path_that_does_not_exist_never_falls_back_to_a_shipped_space(tmp_path, monkeypatch):
    with pytest.raises(SpaceError, match=r"space file '/path/that/does/not/exist/table5_ablation.yaml' does not exist"):
        load_space("/path/that/does/not/exist/table5_ablation.yaml")
    with pytest.raises(SpaceError, match="does not exist"):
        load_space("./table5_ablation.yaml")
    assert load_space("table5_ablation.yaml").name == "table5_ablation"  # a bare name: the shipped file
    monkeypatch.chdir(tmp_path)
    (tmp_path / "table5_ablation.yaml").write_text("name: mine\nvariants: [{name: A}]\n")
    assert load_space("table5_ablation.yaml").name == "mine"  # a file here wins over the shipped one
    assert load_space("./table5_ablation.yaml").name == "mine"


def test_keep_models_is_a_space_level_switch():
    assert load_space("table5_ablation").keep_models is True
    assert parse_space({"variants": [{"name": "A"}], "keep_models": False}, "f.yaml").keep_models is False
    with pytest.raises(SpaceError, match="f.yaml: keep_models: must be true or false, got 'no'"):
        parse_space({"variants": [{"name": "A"}], "keep_models": "no"}, "f.yaml")
