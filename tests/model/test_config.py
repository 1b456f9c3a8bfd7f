import pytest

from model.config import RunConfig, load_config_file


def test_overrides_parse_strings_by_field_type():
    config = RunConfig().with_overrides({"alpha": "1e-4", "num_embeddings": "3", "expert_hidden": "64,32",
                                          "bf16": "true", "gating": "pg", "epochs": 4})
    assert config.model.alpha == 1e-4 and config.model.num_embeddings == 3
    assert config.model.expert_hidden == (64, 32) and config.model.gating == "pg"
    assert config.train.bf16 is True and config.train.epochs == 4


def test_unknown_key_names_it():
    with pytest.raises(ValueError, match="unknown config key 'alhpa'; valid keys: .*'alpha'"):
        RunConfig().with_overrides({"alhpa": "1"})


@pytest.mark.parametrize("key,value", [("epochs", "two"), ("num_embeddings", "2.5"), ("bf16", "maybe"),
                                       ("lr", "fast"), ("gating", 3), ("epochs", 2.5)])
def test_wrong_type_names_key(key, value):
    with pytest.raises(ValueError, match=f"config key '{key}' expects"):
        RunConfig().with_overrides({key: value})


@pytest.mark.parametrize("key,value,message", [("epochs", "0", "epochs must be >= 1"), ("lr", "0", "lr must be > 0"),
                                               ("monitor", "test_auc_overall", "monitor must look like"),
                                               ("diagnostics_every", "-1",
                                                "^diagnostics_every must be >= 0, but got diagnostics_every=-1$"),
                                               ("diagnostics_rows", "0", "diagnostics_rows must be >= 1")])
def test_bad_train_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        RunConfig().with_overrides({key: value})


def test_monitor_mode():
    assert RunConfig().train.monitor_mode == "max"
    assert RunConfig().with_overrides({"monitor": "val_logloss_S1"}).train.monitor_mode == "min"


def test_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("alpha: 0.01\nexpert_hidden: [16, 8]\n")
    values = load_config_file(path)
    config = RunConfig().with_overrides(values)
    assert config.model.alpha == 0.01 and config.model.expert_hidden == (16, 8)
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config_file(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config_file(tmp_path / "nope.yaml")
