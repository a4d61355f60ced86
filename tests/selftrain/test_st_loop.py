"""The self-training loop end to end on a tiny config (real stages, tiny models): records, leaks, resume.

One uninterrupted run is shared by the tests (module fixture); the crash tests rerun the whole loop and compare
its final metrics with that run's, so every stage must be deterministic for a fixed seed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rewardranker.problems import load_problems
from rewardranker.runio import read_jsonl
from rewardranker.selftrain import SelfTrainConfig, plan, run_selftrain
from rewardranker.selftrain import stages as stage_calls
from rewardranker.selftrain.loop import MARKER

TINY = {
    "train_problems": ["procedural:train"], "eval_problems": ["procedural:heldout"], "languages": ["py"],
    "max_train_problems": 8, "max_eval_problems": 4, "generator": "local", "generator_size": "tiny",
    "reward_backbone": "sft", "iterations": 2, "samples_per_problem": 4, "eval_samples_per_problem": 4,
    "seed": 3, "sft_cache": "",
    "generation": {"max_new_tokens": 32, "batch_size": 16, "device": "cpu", "precision": "fp32"},
    "sft": {"max_steps": 12, "batch_size": 8, "learning_rate": 0.003, "max_length": 160, "precision": "fp32",
            "logging_steps": 4},
    "ppo": {"steps": 2, "batch_size": 4, "minibatch_size": 4, "ppo_epochs": 1, "max_new_tokens": 24,
            "precision": "fp32", "save_every": 100, "samples_per_prompt": 2, "baseline": "group",
            "reward_shaping": "preference"},  # the default config's PPO reward
    "reward": {"max_steps": 3, "batch_size": 4, "max_length": 128, "consensus": "tfidf", "bf16": False,
               "train_top_layers": -1, "lr": 0.001},
    "execution": {"workers": 2},
}
TRAINING_CALLS = ("build_generator", "sft", "ppo", "train_rm")


def tiny_config(tmp: Path) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["execution"]["cache_path"] = str(tmp / "verdicts.sqlite")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def final_metrics(run_dir: Path) -> list[dict]:
    """The report's per-iteration metrics, plus the last RM's raw held-out scores (floats expose any drift)."""
    rows = json.loads((run_dir / "report" / "report.json").read_text())["iterations"]
    scores = read_jsonl(run_dir / "iter_2/eval_score/scores.jsonl")
    return rows + [{"scores": [(r["problem_id"], r["sample_id"], r["score"]) for r in scores]}]


class Spy:
    """Wraps the stage calls, recording which ran and with which problems (and optionally crashing)."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, set[str]]] = []
        for name in ("build_generator", "sft", "ppo", "sample", "execute", "train_rm", "load_rm"):
            monkeypatch.setattr(stage_calls, name, self._wrap(name, getattr(stage_calls, name)))

    def _wrap(self, name, fn):
        def wrapped(*args, **kwargs):
            self.calls.append((name, _problem_ids(name, args)))
            return fn(*args, **kwargs)
        return wrapped

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


def _problem_ids(name: str, args) -> set[str]:
    """Problem ids (or prompts) a stage call was given."""
    if name == "build_generator":
        return set(args[0])  # the texts its tokenizer is trained on
    if name == "sft":
        return {prompt for prompt, _ in args[2]}
    if name == "ppo":
        return {p.problem_id for p in args[3]}
    if name in ("sample",):
        return {p.problem_id for p in args[1]}
    if name == "execute":
        return {p.problem_id for p in args[0]}
    if name == "train_rm":
        return set(args[1]) | {s.problem_id for s in args[2]}
    return set()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted tiny run: (run dir, config path, spy)."""
    tmp = tmp_path_factory.mktemp("st")
    path = tiny_config(tmp)
    with pytest.MonkeyPatch.context() as mp:
        spy = Spy(mp)
        run_selftrain(SelfTrainConfig.from_file(path), tmp / "run", progress=False, log=lambda _: None)
    return tmp / "run", path, spy


def test_run_writes_every_stage_and_a_report(finished):
    run_dir, path, _ = finished
    cfg = SelfTrainConfig.from_file(path)
    assert all((run_dir / s.name / MARKER).exists() for s in plan(cfg))
    rows = final_metrics(run_dir)[:-1]
    assert [r["iteration"] for r in rows] == [0, 1, 2] and rows[0]["problems"] == 4
    for r in rows:
        assert 0 <= r["sampled_pass@1"] <= r["oracle_pass@n"] <= 100
        assert r["reranked_pass@1"] <= r["oracle_pass@n"]
    for r in rows[1:]:  # the chain metrics of every PPO iteration, with their paired intervals
        assert 0 <= r["exploitation"] <= 100
        lo, hi = r["robust_ranked_pass@1"]["ci95"]
        assert lo <= r["robust_ranked_pass@1"]["diff"] <= hi
        assert set(r["per_language"]) == {"py"}
    report = (run_dir / "report" / "report.md").read_text()
    assert "| iteration |" in report and "iter_2/reward" in report and "## Per language" in report
    assert "Chain holds" in report or "Chain breaks" in report
    assert (run_dir / "report" / "report.png").stat().st_size > 10_000
    assert rows[1]["rm_data"] >= rows[0]["rm_data"]  # positives and hard negatives are added, never dropped


def test_heldout_problems_never_reach_training(finished):
    run_dir, _, spy = finished
    heldout = load_problems("procedural:heldout:py")
    held_ids, held_prompts = {p.problem_id for p in heldout}, {p.prompt for p in heldout}
    trained = [(name, ids) for name, ids in spy.calls if name in TRAINING_CALLS]
    assert {name for name, _ in trained} == {"sft", "ppo", "train_rm", "build_generator"}
    for name, ids in trained:
        assert ids and not ids & held_ids and not ids & held_prompts, name
        assert not any(prompt in text for text in ids for prompt in held_prompts), name
    for k in range(3):
        for rel in (f"iter_{k}/sample/samples.jsonl", f"iter_{k}/execute/verdicts.jsonl",
                    f"iter_{k}/data/rm_data.jsonl"):
            assert not {r["problem_id"] for r in read_jsonl(run_dir / rel)} & held_ids, rel
    # and the held-out sets were really evaluated
    assert {r["problem_id"] for r in read_jsonl(run_dir / "iter_2/eval_execute/verdicts.jsonl")} <= held_ids


def test_rerunning_a_finished_run_does_nothing(finished, monkeypatch):
    run_dir, path, _ = finished
    before = (run_dir / "report" / "report.json").read_bytes()
    spy = Spy(monkeypatch)
    run_selftrain(SelfTrainConfig.from_file(path), run_dir, progress=False, log=lambda _: None)
    assert spy.calls == []
    assert (run_dir / "report" / "report.json").read_bytes() == before


def test_rerun_one_stage_by_hand_redoes_it_and_what_follows(finished, tmp_path, monkeypatch):
    run_dir, path, _ = finished
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    spy = Spy(monkeypatch)
    run_selftrain(SelfTrainConfig.from_file(path), copy, rerun="iter_2/reward", progress=False, log=lambda _: None)
    assert spy.names()[0] == "train_rm" and "ppo" not in spy.names() and "sft" not in spy.names()
    assert final_metrics(copy) == final_metrics(run_dir)


@pytest.mark.slow
def test_crash_in_every_stage_resumes_to_the_same_metrics(finished, tmp_path, monkeypatch):
    """Each stage's first attempt leaves its outputs plus a torn file and raises KeyboardInterrupt (Ctrl-C)."""
    run_dir, path, _ = finished
    from rewardranker.selftrain import loop

    crashed: set[str] = set()
    real = loop._run_stage

    def crashing(ctx, stage, log):
        if stage.name not in crashed:
            crashed.add(stage.name)
            out = loop.stage_dir(ctx.run_dir, stage.name)
            out.mkdir(parents=True, exist_ok=True)
            stage.fn(ctx, stage.iteration, out)
            (out / "torn.jsonl").write_text('{"problem_id": "x", "sam')
            raise KeyboardInterrupt
        real(ctx, stage, log)

    monkeypatch.setattr(loop, "_run_stage", crashing)
    cfg = SelfTrainConfig.from_file(path)
    for _ in range(len(plan(cfg)) + 1):
        try:
            run_selftrain(cfg, tmp_path / "run", progress=False, log=lambda _: None)
            break
        except KeyboardInterrupt:
            continue
    assert crashed == {s.name for s in plan(cfg)}
    assert final_metrics(tmp_path / "run") == final_metrics(run_dir)
    assert not list((tmp_path / "run").glob("**/torn.jsonl"))


@pytest.mark.slow
def test_sigkill_mid_run_resumes_to_the_same_metrics(finished, tmp_path):
    run_dir, path, _ = finished
    cmd = [sys.executable, "-m", "rewardranker", "selftrain", "--config", str(path), "--run-dir",
           str(tmp_path / "run")]
    import torch

    # bit-identical floats need the same intra-op thread count as the in-process reference run (other test
    # modules may have changed it for this pytest process)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (tmp_path / "run/iter_1/ppo" / MARKER).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run/report" / MARKER).exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert final_metrics(tmp_path / "run") == final_metrics(run_dir)
