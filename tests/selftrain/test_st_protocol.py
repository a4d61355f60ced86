"""The iteration protocol: what each rm_update / rm_data_window setting puts into RM_k's data, which stages
ablation arms may share, and the quiet stage display."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rewardranker.records import Problem
from rewardranker.runio import read_jsonl, write_jsonl
from rewardranker.selftrain import SelfTrainConfig, packaged_config, plan, steps
from rewardranker.selftrain import stages as stage_calls
from rewardranker.selftrain.loop import StageDisplay, protocol_independent_stages

PROBLEMS = [Problem(problem_id=f"P/{i}", language="py", prompt=f"def f{i}(x):\n", tests="", stop_tokens=(),
                    entry_point=f"f{i}", canonical_solution="    return x\n") for i in range(2)]


class FakeRM:
    """Scores a program by its length: long failing programs are the ones the 'RM' is fooled by."""

    def score(self, problems, samples, progress=False):
        return [float(len(s.completion)) for s in samples]


def _ctx(tmp_path: Path, **protocol) -> SimpleNamespace:
    cfg = SelfTrainConfig.from_dict({**_default(), **protocol, "reference_positives": True})
    return SimpleNamespace(cfg=cfg, train=PROBLEMS, progress=False, run_dir=tmp_path, train_subset=lambda k: PROBLEMS,
                           path=lambda stage, *parts: tmp_path.joinpath(stage, *parts))


def _default() -> dict:
    import yaml

    return yaml.safe_load(packaged_config("default").read_text())


def _iteration(tmp_path: Path, k: int, rows: list[tuple[str, int, str, bool]]) -> None:
    write_jsonl(tmp_path / f"iter_{k}/sample/samples.jsonl",
                [{"problem_id": p, "sample_id": i, "language": "py", "completion": c} for p, i, c, _ in rows])
    write_jsonl(tmp_path / f"iter_{k}/execute/verdicts.jsonl",
                [{"problem_id": p, "sample_id": i, "language": "py", "passed": ok, "status": "OK" if ok else "Exception"}
                 for p, i, _, ok in rows])


ITER0 = [("P/0", 0, "    return x\n", True), ("P/0", 1, "    return 0\n", False),
         ("P/1", 0, "    return x\n", True), ("P/1", 1, "    return 1\n", False)]
ITER1 = [("P/0", 0, "    return x  # fine\n", True),
         ("P/0", 1, "    return 0 if x else 0 + 0 + 0\n", False),  # long and failing: a hard negative
         ("P/0", 2, "    return 2\n", False),  # short and failing: not hard
         ("P/1", 0, "    return 1\n", False),  # the same program as iteration 0's: a duplicate
         ("P/1", 1, "    return x\n", True)]


def _data(tmp_path: Path, monkeypatch, **protocol) -> list[dict]:
    monkeypatch.setattr(stage_calls, "load_rm", lambda _path, _ray=None: FakeRM())
    ctx = _ctx(tmp_path, **protocol)
    _iteration(tmp_path, 0, ITER0)
    _iteration(tmp_path, 1, ITER1)
    for k in (0, 1):
        out = tmp_path / f"iter_{k}/data"
        out.mkdir(parents=True, exist_ok=True)
        steps.rm_data(ctx, k, out)
    return read_jsonl(tmp_path / "iter_1/data/rm_data.jsonl")


def _new(records: list[dict]) -> list[tuple[str, int, str]]:
    return sorted((r["problem_id"], r["sample_id"] % steps.ITERATION_STRIDE, r["origin"]) for r in records
                  if r["iteration"] == 1)


def test_hard_negatives_arm_adds_only_the_failures_the_previous_rm_ranks_too_high(tmp_path, monkeypatch):
    records = _data(tmp_path, monkeypatch, rm_update="hard_negatives")
    assert _new(records) == [("P/0", 1, "hard_negative")]
    hard = [r for r in records if r["origin"] == "hard_negative"]
    assert hard[0]["weight"] == _default()["hard_negative_weight"] and not hard[0]["passed"]
    assert len([r for r in records if r["iteration"] == 0]) == 4 + 2 - 2  # samples + references, deduplicated


def test_self_training_arm_adds_every_executed_sample_once(tmp_path, monkeypatch):
    records = _data(tmp_path, monkeypatch, rm_update="self_training")
    # P/1 sample 0 repeats iteration 0's failing program and P/1 sample 1 its passing one: deduplicated away
    assert _new(records) == [("P/0", 0, "sample"), ("P/0", 1, "hard_negative"), ("P/0", 2, "sample")]
    kept = _data(tmp_path / "nodedup", monkeypatch, rm_update="self_training", dedup_programs=False)
    assert len(_new(kept)) == 5


def test_last_window_keeps_references_but_drops_earlier_samples(tmp_path, monkeypatch):
    records = _data(tmp_path, monkeypatch, rm_update="self_training", rm_data_window="last")
    assert {r["origin"] for r in records if r["iteration"] == 0} == {"reference"}


def test_infra_errors_never_become_training_labels(tmp_path, monkeypatch):
    monkeypatch.setattr(stage_calls, "load_rm", lambda _path, _ray=None: FakeRM())
    ctx = _ctx(tmp_path)
    _iteration(tmp_path, 0, ITER0)
    verdicts = read_jsonl(tmp_path / "iter_0/execute/verdicts.jsonl")
    verdicts[1]["status"] = "InfraError"
    write_jsonl(tmp_path / "iter_0/execute/verdicts.jsonl", verdicts)
    (tmp_path / "iter_0/data").mkdir(parents=True)
    steps.rm_data(ctx, 0, tmp_path / "iter_0/data")
    ids = {(r["problem_id"], r["sample_id"]) for r in read_jsonl(tmp_path / "iter_0/data/rm_data.jsonl")}
    assert ("P/0", 1) not in ids and ("P/1", 1) in ids


def test_arms_share_only_stages_the_protocol_cannot_change():
    cfg = SelfTrainConfig.from_file(packaged_config("default"))
    shared = protocol_independent_stages(cfg)
    assert "iter_0/sft" in shared and "iter_1/ppo" in shared and "iter_1/eval_execute" in shared
    assert not {"iter_1/data", "iter_1/reward", "iter_1/eval_score", "iter_2/ppo"} & set(shared)
    names = [s.name for s in plan(cfg)]
    assert all(names.index(n) < names.index("iter_1/reward") or n.startswith("iter_1/eval_") for n in shared)


def test_stage_display_sends_raw_output_to_the_log_and_one_line_to_the_terminal(tmp_path, capfd):
    with StageDisplay(tmp_path, "[1/1] iter_0/demo") as display:
        print("{'loss': 0.5}")
        print("FutureWarning: deprecated", file=sys.stderr)
        subprocess.run(["echo", "from a subprocess"], check=True)
        display.finish("1.0 s wall, 1.0 s CPU")
    out, err = capfd.readouterr()
    log = (tmp_path / "log.txt").read_text()
    assert "{'loss': 0.5}" in log and "FutureWarning" in log and "from a subprocess" in log
    assert "loss" not in out + err and "FutureWarning" not in out + err
    assert "iter_0/demo: done, 1.0 s wall, 1.0 s CPU" in err
    print("after")  # descriptors are restored
    assert "after" in capfd.readouterr().out


def test_an_interrupted_stage_says_where_it_stopped_and_how_to_resume(tmp_path, capfd):
    with pytest.raises(KeyboardInterrupt), StageDisplay(tmp_path, "[2/9] iter_0/reward"):
        raise KeyboardInterrupt
    err = capfd.readouterr().err
    assert "iter_0/reward: stopped (KeyboardInterrupt)" in err and "the same command resumes" in err
