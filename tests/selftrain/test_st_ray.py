"""`ray:` in a self-training config reaches the execution stage and the reward-model loads (issue 11)."""

from __future__ import annotations

import pytest
import yaml

from rewardranker.errors import ConfigError
from rewardranker.selftrain import SelfTrainConfig, packaged_config
from rewardranker.selftrain import stages as stage_calls


def _cfg(tmp_path, **overrides) -> SelfTrainConfig:
    obj = {**yaml.safe_load(packaged_config("default").read_text()), **overrides}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(obj))
    return SelfTrainConfig.from_file(path)


def test_ray_address_goes_to_the_execution_config(tmp_path):
    assert _cfg(tmp_path).stage_configs()["execution"].ray is None
    cfg = _cfg(tmp_path, ray="auto")
    assert cfg.stage_configs()["execution"].ray == "auto"
    explicit = _cfg(tmp_path, ray="auto", execution={"workers": 2, "ray": "10.0.0.1:6379"})
    assert explicit.stage_configs()["execution"].ray == "10.0.0.1:6379", "the section's own setting wins"


def test_a_wrong_ray_value_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="field 'ray'"):
        _cfg(tmp_path, ray=3)


def test_reward_model_loads_on_ray_only_when_asked(monkeypatch, tmp_path):
    made = []

    class FakeRayRM:
        def __init__(self, model_dir, address):
            made.append((model_dir, address))

    from rewardranker.reward import ray_scoring

    monkeypatch.setattr(ray_scoring, "RayRewardModel", FakeRayRM)
    assert isinstance(stage_calls.load_rm(tmp_path / "rm", "auto"), FakeRayRM)
    assert made == [(tmp_path / "rm", "auto")]
