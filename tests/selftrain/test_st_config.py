"""Self-training config: a wrong field fails before any work, with a message naming the field and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.errors import ConfigError
from rewardranker.selftrain import SelfTrainConfig, packaged_config, run_selftrain
from rewardranker.selftrain import stages as stage_calls


def _write(tmp_path: Path, **overrides) -> Path:
    obj = yaml.safe_load(packaged_config("default").read_text())
    obj.update(overrides)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(obj))
    return path


def test_packaged_configs_are_valid():
    for name in ("default", "paper", "self-training", "hard-negatives", "no-selftraining"):
        cfg = SelfTrainConfig.from_file(packaged_config(name))
        assert cfg.iterations >= 2 and cfg.train_problems != cfg.eval_problems


def test_presets_extend_the_default_and_change_only_the_protocol():
    default = SelfTrainConfig.from_file(packaged_config("default")).to_dict()
    for name, update in (("self-training", "self_training"), ("hard-negatives", "hard_negatives"),
                         ("no-selftraining", "none")):
        preset = SelfTrainConfig.from_file(packaged_config(name)).to_dict()
        assert preset["rm_update"] == update
        assert {k for k in default if default[k] != preset[k]} <= {"rm_update"}


def test_extends_merges_stage_sections_field_by_field(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: default\nppo: {steps: 7}\nrm_init: continue\n")
    cfg = SelfTrainConfig.from_file(path)
    default = SelfTrainConfig.from_file(packaged_config("default"))
    assert cfg.ppo == {**default.ppo, "steps": 7} and cfg.rm_init == "continue"
    assert cfg.languages == default.languages


@pytest.mark.parametrize("overrides, field", [
    ({"iterations": -1}, "iterations"),
    ({"iterations": "two"}, "iterations"),
    ({"samples_per_problem": 1}, "samples_per_problem"),
    ({"languages": ["py", "rb"]}, "languages"),
    ({"hard_negative_quantile": 1.5}, "hard_negative_quantile"),
    ({"eval_problems": ["procedural:train"]}, "eval_problems"),
    ({"generator_size": "huge"}, "generator_size"),
    ({"reward": {"lr": -1}}, "reward.lr"),
    ({"generation": {"temperature": -0.5}}, "generation.temperature"),
    ({"sft": {"no_such_field": 1}}, "sft.no_such_field"),
    ({"execution": {"workers": 0}}, "execution.workers"),
    ({"iterashuns": 2}, "iterashuns"),
    ({"rm_update": "sometimes"}, "rm_update"),
    ({"rm_init": "warm"}, "rm_init"),
    ({"rm_data_window": "recent"}, "rm_data_window"),
    ({"dedup_programs": "yes"}, "dedup_programs"),
])
def test_bad_field_is_named_with_the_file(tmp_path, overrides, field):
    path = _write(tmp_path, **overrides)
    with pytest.raises(ConfigError) as err:
        SelfTrainConfig.from_file(path)
    assert err.value.field == field
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)


def test_overlapping_problem_sets_fail_before_any_stage_runs(tmp_path, monkeypatch):
    called = []
    for name in ("build_generator", "sft", "sample", "execute", "train_rm", "ppo"):
        monkeypatch.setattr(stage_calls, name, lambda *a, _n=name, **k: called.append(_n))
    # different spellings of the same problems slip past the spec check, but not past the problem check
    cfg = SelfTrainConfig.from_file(_write(tmp_path, train_problems=["procedural:train:py"],
                                           eval_problems=["procedural:all"]))
    with pytest.raises(ConfigError, match="eval_problems"):
        run_selftrain(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    assert called == []


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    path = _write(tmp_path, eval_samples_per_problem=0)
    result = CliRunner().invoke(app, ["selftrain", "--config", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "eval_samples_per_problem" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_run_dir_refuses_a_different_config(tmp_path):
    from rewardranker.selftrain.loop import _claim_run_dir

    run = tmp_path / "run"
    _claim_run_dir(SelfTrainConfig.from_file(_write(tmp_path)), run)
    with pytest.raises(ConfigError, match="seed"):
        _claim_run_dir(SelfTrainConfig.from_file(_write(tmp_path, seed=7)), run)


def test_overrides_update_a_stage_section_and_leave_the_base_untouched():
    from rewardranker.selftrain.config import apply_overrides, parse_overrides

    base = {"seed": 0, "ppo": {"steps": 40, "kl_coef": 0.5}}
    got = apply_overrides(base, parse_overrides(["ppo.kl_coef=0.15", "seed=3"]))
    assert got == {"seed": 3, "ppo": {"steps": 40, "kl_coef": 0.15}}
    assert base == {"seed": 0, "ppo": {"steps": 40, "kl_coef": 0.5}}
