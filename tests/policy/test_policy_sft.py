"""SFT through TRL: loss falls on a small set, only solution tokens are learned, LoRA merges, data sources."""

from __future__ import annotations

import json

import pytest
from policy_helpers import toy_problems
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.generation import GenerationConfig, sample_problems
from rewardranker.policy import SFTConfig, examples_from_problems, examples_from_verdicts, run_sft
from rewardranker.policy.sft import sft_losses
from rewardranker.runio import read_jsonl


def test_sft_lowers_loss_and_learns_the_solutions(tiny_policy, tmp_path):
    probs = toy_problems(8)
    cfg = SFTConfig(max_steps=40, batch_size=8, learning_rate=3e-3, logging_steps=5)
    out = run_sft(cfg, str(tiny_policy), examples_from_problems(probs), tmp_path / "sft")
    losses = sft_losses(out)
    assert len(losses) == 8 and losses[-1] < 0.3 * losses[0], losses
    gen = GenerationConfig(model=str(out), temperature=0.0, max_new_tokens=16, n=1)
    samples = read_jsonl(sample_problems(gen, probs, tmp_path / "s.jsonl", progress=False))
    right = sum(s["completion"].strip() == p.canonical_solution.strip() for s, p in zip(samples, probs))
    assert right >= 6, [s["completion"] for s in samples]
    assert json.loads((out / "sft_config.json").read_text())["n_examples"] == 8


def test_lora_sft_saves_a_merged_plain_model(tiny_policy, tmp_path):
    cfg = SFTConfig(max_steps=3, batch_size=4, lora=True, lora_r=4, logging_steps=1)
    out = run_sft(cfg, str(tiny_policy), examples_from_problems(toy_problems(4)), tmp_path / "lora")
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    gen = GenerationConfig(model=str(out), temperature=0.0, max_new_tokens=4)
    assert len(read_jsonl(sample_problems(gen, toy_problems(2), tmp_path / "s.jsonl", progress=False))) == 2


def test_examples_from_verdicts_keeps_distinct_passing_samples(tmp_path):
    probs = toy_problems(2)
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"problem_id": "toy/0", "sample_id": 0, "completion": "    return x\n"},
        {"problem_id": "toy/0", "sample_id": 1, "completion": "    return x + 0\n"},
        {"problem_id": "toy/0", "sample_id": 2, "completion": "    return x + 0\n"},
        {"problem_id": "toy/1", "sample_id": 0, "completion": "    return 2\n"}]))
    (tmp_path / "v.jsonl").write_text("".join(json.dumps({"problem_id": p, "sample_id": s, "status": st,
                                                          "passed": st == "OK"}) + "\n"
                                              for p, s, st in [("toy/0", 0, "Exception"), ("toy/0", 1, "OK"),
                                                               ("toy/0", 2, "OK"), ("toy/1", 0, "Exception")]))
    ex = examples_from_verdicts(probs, tmp_path / "s.jsonl", tmp_path / "v.jsonl")
    assert ex == [("def f0(x):\n", "    return x + 0\n")]


def test_no_reference_solutions_is_a_clear_error():
    from rewardranker.records import Problem

    with pytest.raises(RewardRankerError, match="reference solution"):
        examples_from_problems([Problem("a", "py", "def f():\n", "")])
    with pytest.raises(ConfigError, match="'warmup_ratio'"):
        SFTConfig(warmup_ratio=1.5)


def test_sft_command(tiny_policy, tmp_path):
    probs = tmp_path / "p.jsonl"
    probs.write_text("".join(json.dumps({"task_id": p.problem_id, "prompt": p.prompt, "entry_point": "f",
                                         "canonical_solution": p.canonical_solution, "test": "def check(f):\n"
                                         "    pass\n"}) + "\n" for p in toy_problems(3)))
    res = CliRunner().invoke(app, ["sft", "--model", str(tiny_policy), "--problems", str(probs),
                                   "--out", str(tmp_path / "o"), "--max-steps", "2", "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "sft_log.jsonl").exists()


def test_mbpp_reference_solutions_are_sft_examples(shared_data):
    from rewardranker.problems import load_problems

    examples = examples_from_problems(load_problems(shared_data / "mbpp" / "mbpp-sanitized.jsonl"))
    assert len(examples) == 427
    prompt, solution = examples[0]
    assert prompt.startswith("def similar_elements") and "return" in solution
