from pathlib import Path

import pytest
import yaml

from mmdf.config import parse_override, save_config
from mmdf.run_config import Config, load_config
from mmdf.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_without_file():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.run_dir == Path("runs/default")


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("experiment: base\nseed: 1\nfolds:\n  n_splits: 3\n  seed: 7\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "exp.yaml").write_text("base: ../base.yaml\nexperiment: exp\nfolds:\n  n_splits: 4\n")
    cfg = load_config(tmp_path / "sub" / "exp.yaml", ["seed=5", "data.root=/x"])
    assert cfg.experiment == "exp"
    assert cfg.folds.n_splits == 4  # child wins
    assert cfg.folds.seed == 7  # merged key by key, not replaced
    assert cfg.seed == 5 and cfg.data.root == "/x"


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("folds:\n  n_split: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'folds.n_split' \(set in .*bad.yaml\).*n_splits"):
        load_config(p)


def test_unknown_key_in_base_names_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("dta:\n  root: x\n")
    (tmp_path / "exp.yaml").write_text("base: base.yaml\nseed: 3\n")
    with pytest.raises(ConfigError, match=r"'dta' \(set in .*base.yaml\)"):
        load_config(tmp_path / "exp.yaml")


def test_override_unknown_key_and_bad_type():
    with pytest.raises(ConfigError, match="command-line override 'folds.nsplits=3'"):
        load_config(None, ["folds.nsplits=3"])
    with pytest.raises(ConfigError, match="'folds.n_splits'.*must be int, got 'many'"):
        load_config(None, ["folds.n_splits=many"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(None, ["folds.n_splits"])


def test_invalid_value_from_post_init():
    with pytest.raises(ConfigError, match="at least 2"):
        load_config(None, ["folds.n_splits=1"])


def test_missing_base_and_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="config file not found.*missing.yaml.*named as base"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("base: c.yaml\n")
    (tmp_path / "c.yaml").write_text("base: b.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "b.yaml")


def test_parse_override_values():
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=null") == (["a"], None)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["experiment=rt", "folds.n_splits=3"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load(path.read_text())["folds"]["n_splits"] == 3
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(REPO) for p in (REPO / "configs").rglob("*.yaml") if p.name != "pipeline.yaml")
)
def test_every_shipped_config_loads(path):
    cfg = load_config(REPO / path)
    assert cfg.experiment


def test_config_not_utf8_names_the_file(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("experiment: café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 on line 1.*save the file as UTF-8"):
        load_config(p)


@pytest.mark.parametrize("base", ["5", "{a: b.yaml}", "[a.yaml, 3]", "''"])
def test_base_must_be_paths(tmp_path, base):
    p = tmp_path / "exp.yaml"
    p.write_text(f"base: {base}\nseed: 3\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: key 'base' must be a path or a list of paths"):
        load_config(p)


def test_base_list_and_utf8_bom(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    (tmp_path / "b.yaml").write_text("experiment: b\n")
    (tmp_path / "exp.yaml").write_bytes("\ufeffbase: [a.yaml, b.yaml]\n".encode("utf-8"))
    cfg = load_config(tmp_path / "exp.yaml")
    assert (cfg.seed, cfg.experiment) == (1, "b")
