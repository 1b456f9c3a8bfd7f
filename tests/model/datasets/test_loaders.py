"""Specs, loaders and the package's import structure (model/datasets/__init__.py)."""
import ast
from pathlib import Path

import pytest
import torch

import model.datasets as datasets
from model.datasets import check_spec, load_data
from model.datasets.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MERGED = FIXTURES / "kuairand" / "log_merged_sample_1k.csv"
REPO = Path(__file__).resolve().parents[3]


def test_check_spec_knows_prepared_kinds():
    check_spec("kuairand1k:/some/dir")
    check_spec("aliccp:/some/dir")
    check_spec("synthetic:tiny")
    check_spec("synthetic:small:3")
    check_spec("parquet:/x.parquet")
    with pytest.raises(ValueError, match="needs a prepared directory after kuairand1k:"):
        check_spec("kuairand1k:")
    with pytest.raises(ValueError, match="unknown data source 'kuairand'.*aliccp.*kuairand1k"):
        check_spec("kuairand:/x")


@pytest.mark.parametrize("spec,message", [("csv:x", "unknown data source 'csv'"),
                                          ("synthetic:huge", "unknown synthetic size 'huge'"),
                                          ("synthetic:tiny:x1", "seed must be a non-negative integer, got 'x1'"),
                                          ("parquet:", "needs a path")])
def test_bad_data_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        check_spec(spec)


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare it first with `python -m model.datasets prepare aliccp"):
        load_data(f"aliccp:{tmp_path / 'nothing'}")
    main(["prepare", "kuairand1k", "--merged", str(MERGED), "--out", str(tmp_path / "k")])
    assert load_data(f"kuairand1k:{tmp_path / 'k'}").num_rows == 200
    assert load_data(f"kuairand1k:{tmp_path / 'k' / 'data.parquet'}").num_rows == 200
    assert load_data(f"parquet:{tmp_path / 'k' / 'data.parquet'}").num_rows == 200
    with pytest.raises(ValueError, match="holds prepared 'kuairand1k' data, not 'aliccp'"):
        load_data(f"aliccp:{tmp_path / 'k'}")


def test_synthetic_cache_serves_identical_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CROCODILE_CACHE_DIR", str(tmp_path))
    from model.datasets.synthetic import SIZES, SyntheticSize

    monkeypatch.setitem(SIZES, "mini", SyntheticSize(num_rows=3000, num_users=50, num_items=200, num_categories=5,
                                                     num_authors=20))
    first = datasets.load_data("synthetic:mini:3")
    cached = list(tmp_path.glob("synthetic-v2-mini-3-*"))
    assert len(cached) == 1 and cached[0].is_dir()
    second = datasets.load_data("synthetic:mini:3")
    for col in ("features", "labels", "domains", "users", "split", "truth"):
        assert torch.equal(getattr(first, col), getattr(second, col)), col
    assert second.field_names == first.field_names and second.vocab_sizes == first.vocab_sizes
    second.features[0, 0] += 1  # copy-on-write: changes this process's copy only, never the file
    assert torch.equal(datasets.load_data("synthetic:mini:3").features, first.features)
    (cached[0] / "features.npy").write_bytes(b"garbage")  # a damaged cache is rebuilt
    assert torch.equal(datasets.load_data("synthetic:mini:3").features, first.features)
    (cached[0] / "labels.npy").unlink()  # so is an incomplete one
    assert torch.equal(datasets.load_data("synthetic:mini:3").labels, first.labels)
    assert [p.name for p in tmp_path.iterdir()] == [cached[0].name]  # no temporary directories left


def test_v1_and_v2_are_cached_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("CROCODILE_CACHE_DIR", str(tmp_path))
    from model.datasets.synthetic import SIZES, SyntheticSize
    from model.datasets.synthetic_v1 import make_synthetic_v1

    monkeypatch.setitem(SIZES, "mini", SyntheticSize(num_rows=3000, num_users=50, num_items=200, num_categories=5,
                                                     num_authors=20))
    v1, v2 = datasets.load_data("synthetic-v1:mini"), datasets.load_data("synthetic:mini")
    names = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir())  # world-size-seed, then the hash
    assert names == ["synthetic-v1-mini-0", "synthetic-v2-mini-0"]
    assert v1.name == "synthetic-v1:mini" and v2.name == "synthetic:mini"
    assert not torch.equal(v1.labels, v2.labels)
    again = datasets.load_data("synthetic-v1:mini")  # from the cache
    assert torch.equal(again.features, make_synthetic_v1("mini").features) and torch.equal(again.truth, v1.truth)
    check_spec("synthetic-v1:kuairand:2")
    with pytest.raises(ValueError, match="unknown synthetic size 'huge'"):
        check_spec("synthetic-v1:huge")


def _imports(path: Path) -> set[str]:
    """The model.* modules a source file imports (absolute imports only: the package uses no others)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("model")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("model"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from model.datasets import synthetic`
    return found


def test_model_package_has_no_import_cycle_and_no_ray():
    files = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (REPO / "model").rglob("*.py")}
    graph = {mod: {m for m in _imports(p) if m in files and m != mod} for mod, p in files.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(mod, path):
        state[mod] = 1
        for dep in graph[mod]:
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(path + [dep])}"
            if dep not in state:
                visit(dep, path + [dep])
        state[mod] = 2

    for mod in graph:
        if mod not in state:
            visit(mod, [mod])
    assert "model.datasets.cli" not in set().union(*(graph[m] for m in graph if m != "model.datasets.__main__"))
    src = "\n".join(p.read_text() for p in files.values())
    assert "import ray" not in src and "from ray" not in src
