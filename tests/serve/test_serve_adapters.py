"""The RL trainers' reward-function signatures, each called the way its trainer calls it.

verl and OpenRLHF do not install cleanly on this CPU machine (verl pulls another transformers and
huggingface_hub; OpenRLHF needs flash-attn to build), so they are called with their documented argument shapes;
TRL is installed, so its GRPOTrainer itself calls our reward function for a real training step.
"""

from __future__ import annotations

import json

import httpx
import pytest
from serve_helpers import BAD, GOOD

from rewardranker.serve import adapters


def _route_count(url: str, route: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(f'rewardranker_requests_total{{route="{route}",status="200"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def via_service(local_server, monkeypatch):
    monkeypatch.setenv("REWARDRANKER_URL", local_server.url)
    monkeypatch.setattr(adapters, "_DEFAULT", None)
    yield local_server.url
    monkeypatch.setattr(adapters, "_DEFAULT", None)


@pytest.fixture
def in_process(models, exec_cache, monkeypatch):
    monkeypatch.delenv("REWARDRANKER_URL", raising=False)
    monkeypatch.setenv("REWARDRANKER_RM", str(models[1]))
    monkeypatch.setenv("REWARDRANKER_CACHE", str(exec_cache))
    monkeypatch.setattr(adapters, "_DEFAULT", None)
    yield
    monkeypatch.setattr(adapters, "_DEFAULT", None)


def test_verl_compute_score_through_the_service(via_service):
    before = _route_count(via_service, "/v1/execute")
    answer = "Here it is:\n```python\ndef add_one(x):\n    return x + 1\n```\n"
    ok = adapters.compute_score(data_source="rewardranker/py", solution_str=answer,
                                ground_truth=json.dumps(["assert add_one(1) == 2"]),
                                extra_info={"split": "train", "index": 0})
    wrong = adapters.compute_score(data_source="rewardranker/py", solution_str=answer.replace("+", "-"),
                                   ground_truth="assert add_one(1) == 2\n", extra_info=None)
    assert ok == {"score": 1.0, "passed": 1.0, "status": "OK"}
    assert wrong["score"] == 0.0 and wrong["status"] == "Exception"
    assert _route_count(via_service, "/v1/execute") == before + 2


def test_verl_batch_reward_manager_sends_the_rollout_batch_as_one_call(via_service):
    before = _route_count(via_service, "/v1/execute")
    sols = ["```js\nfunction inc(x) { return x + 1; }\n```", "```python\ndef inc(x):\n    return x + 1\n```",
            "def inc(x):\n    return x - 1\n"]
    out = adapters.compute_score_batch(
        data_sources=["multipl-e/js", "rewardranker/py", "rewardranker/py"], solution_strs=sols,
        ground_truths=["console.assert(inc(1) === 2); if (inc(1) !== 2) process.exit(1);",
                       ["assert inc(1) == 2"], ["assert inc(1) == 2"]],
        extra_infos=[{"index": i} for i in range(3)])
    assert [o["score"] for o in out] == [1.0, 1.0, 0.0]
    assert _route_count(via_service, "/v1/execute") == before + 1


def test_verl_compute_score_in_process(in_process):
    r = adapters.compute_score("rewardranker/py", "def g():\n    return 3\n", "assert g() == 3", {})
    assert r["score"] == 1.0


def test_openrlhf_custom_reward_func(in_process):
    import torch

    prompts = ["def f(x):\n", "def f(x):\n"]
    queries = [p + c for p, c in zip(prompts, [GOOD, BAD])]
    out = adapters.reward_func(queries, prompts, ["assert f(1) == 2"] * 2)
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].tolist() == [1.0, 0.0]
    assert out["extra_logs"]["passed"].tolist() == [1.0, 0.0]
    scored = adapters.reward_func(queries, prompts, [None, None])  # no tests: the reward model's scores
    assert scored["rewards"][0] > scored["rewards"][1]


def test_openrlhf_remote_reward_model_url(local_server):
    url = local_server.url + "/openrlhf/reward"  # what --remote_rm_url points at
    prompts = ["def f(x):\n"] * 3
    queries = [p + c for p, c in zip(prompts, [GOOD, BAD, "    return x + 4\n"])]
    tested = httpx.post(url, json={"query": queries, "prompts": prompts,
                                   "labels": [{"language": "py", "tests": ["assert f(1) == 2"]}] * 3},
                        timeout=120).json()
    assert tested["rewards"] == [1.0, 0.0, 0.0] and tested["scores"] == tested["rewards"]
    plain = httpx.post(url, json={"query": queries, "prompts": prompts}, timeout=120).json()
    assert plain["rewards"][0] > plain["rewards"][1] and plain["rewards"][2] > plain["rewards"][1]
    bad = httpx.post(url, json={"query": queries, "prompts": prompts[:1]})
    assert bad.status_code == 400 and "prompts" in bad.json()["error"]["message"]


def test_trl_grpo_trainer_calls_the_reward_function_through_the_service(via_service, models, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    before = _route_count(via_service, "/v1/execute")
    # whatever the untrained generator writes inside the string literal, `assert True` rows pass, the others fail
    rows = [{"prompt": "s = '''", "tests": [f"'''\nassert {ok}"]} for ok in ("True", "False", "True", "False")]
    seen: list[dict] = []

    def rewardranker_exec(prompts, completions, **kwargs):
        seen.append(kwargs)
        return adapters.trl_reward(prompts, completions, **kwargs)

    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=6, use_cpu=True, report_to=[], logging_steps=1, save_strategy="no",
                      bf16=False)
    trainer = GRPOTrainer(model=str(models[0]), reward_funcs=[rewardranker_exec], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=AutoTokenizer.from_pretrained(models[0]))
    trainer.train()
    assert "tests" in seen[0] and "trainer_state" in seen[0]
    logged = trainer.state.log_history[0]
    assert logged["rewards/rewardranker_exec/mean"] == pytest.approx(0.5)
    assert _route_count(via_service, "/v1/execute") == before + 1  # the whole generation batch, one call
