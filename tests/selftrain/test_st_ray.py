"""`ray:` in a self-training config reaches the execution stage and the reward-model loads (issue 11)."""

from __future__ import annotations

import json

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


@pytest.mark.slow
def test_selftrain_on_a_ray_cluster_matches_the_local_run(ray_cluster, tmp_path):
    """One tiny iteration with `ray:` set: execute on executor actors, scoring and PPO rewards on scorer actors;
    the report and the held-out scores equal those of the same run on this machine alone."""
    from test_st_loop import tiny_config

    from rewardranker.execution import ray_backend
    from rewardranker.runio import read_jsonl
    from rewardranker.selftrain import run_selftrain

    runs = {}
    for name, ray in (("local", ""), ("ray", ray_cluster[0].address)):
        (tmp_path / name).mkdir()
        obj = yaml.safe_load(tiny_config(tmp_path / name).read_text())
        obj.update(iterations=1, ray=ray)
        path = tmp_path / name / "cfg.yaml"
        path.write_text(yaml.safe_dump(obj))
        run_dir = run_selftrain(SelfTrainConfig.from_file(path), tmp_path / name / "run", progress=False,
                                log=lambda line: None).parent
        assert bool(ray_backend._POOLS) == bool(ray), "the execute stages ran on the cluster exactly when asked"
        ray_backend.shutdown_pools()
        report = (run_dir / "report" / "report.json").read_text()
        scores = [(r["problem_id"], r["sample_id"], round(r["score"], 5))
                  for r in read_jsonl(run_dir / "iter_1/eval_score/scores.jsonl")]
        runs[name] = (report, scores)
    assert runs["ray"][1] == runs["local"][1]
    strip = ("wall_s", "cpu_s", "timings", "created", "date")
    local, remote = (json.loads(r[0]) for r in (runs["local"], runs["ray"]))
    assert _without(local, strip)["iterations"] == _without(remote, strip)["iterations"]


def _without(obj, keys):
    """A JSON object with timing fields removed, recursively."""
    if isinstance(obj, dict):
        return {k: _without(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [_without(v, keys) for v in obj]
    return obj
