"""A reward model records what it was trained on; `eval` warns when it scores those candidates, and its
reliability title says which rankers are in-sample."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.problems import load_candidates
from rewardranker.reward.provenance import TRAINING_FILE, write_scores_meta, write_training_record


def _file(path, first: int, n: int):
    rows = [{"task_id": f"T/{p}", "prompt": f"def f{p}(x):\n", "entry_point": f"f{p}",
             "completions": ["    return x + 1\n", "    return x - 1\n", f"    return x + {p}\n"],
             "reference_passed": [True, False, p == 1]} for p in range(first, first + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _scores(path, cands, model=None, **meta):
    path.write_text("".join(json.dumps({"problem_id": s.problem_id, "sample_id": s.sample_id,
                                        "score": float(len(s.completion))}) + "\n" for s in cands.samples))
    if model is not None or meta:
        write_scores_meta(path, mode="rm", model=None if model is None else str(model), **meta)
    return path


def test_eval_warns_on_candidates_the_model_was_trained_on(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    train = load_candidates(_file(tmp_path / "train.jsonl", 0, 3))
    held_out_file = _file(tmp_path / "held.jsonl", 3, 3)
    held = load_candidates(held_out_file)
    write_training_record(tmp_path / "rm", train.problems, train.samples)
    # the same candidates as training (ids and files differ; the content hash matches)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text((tmp_path / "train.jsonl").read_text().replace("T/", "X/") + held_out_file.read_text())
    runner = CliRunner()
    r = runner.invoke(app, ["eval", "--samples", str(held_out_file), "--out", str(tmp_path / "ev1"),
                            "--scores", f"rm={_scores(tmp_path / 'held_s.jsonl', held, tmp_path / 'rm')}",
                            "--scores", f"nometa={_scores(tmp_path / 'bare.jsonl', held)}"])
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output
    status = json.loads((tmp_path / "ev1" / "report.json").read_text())["in_sample"]
    assert status["rm"]["status"] == "out-of-sample" and status["nometa"]["status"] == "unknown"

    seen_train = load_candidates(_file(tmp_path / "train_again.jsonl", 0, 3))
    r = runner.invoke(app, ["eval", "--samples", str(tmp_path / "train_again.jsonl"), "--out", str(tmp_path / "ev2"),
                            "--scores", f"rm={_scores(tmp_path / 'train_s.jsonl', seen_train, tmp_path / 'rm')}"])
    assert r.exit_code == 0, r.output
    assert "warning: rm: IN-SAMPLE: the reward model was trained on 9 of 9 candidates" in " ".join(r.output.split())
    status = json.loads((tmp_path / "ev2" / "report.json").read_text())["in_sample"]["rm"]
    assert (status["status"], status["trained_on"], status["candidates"]) == ("in-sample", 9, 9)
    # renamed problems with the same programs are still recognised
    mixed_c = load_candidates(mixed)
    r = runner.invoke(app, ["eval", "--samples", str(mixed), "--out", str(tmp_path / "ev3"),
                            "--scores", f"rm={_scores(tmp_path / 'mixed_s.jsonl', mixed_c, tmp_path / 'rm')}"])
    assert "trained on 9 of 18 candidates" in " ".join(r.output.split())


@pytest.mark.slow
def test_train_rm_records_its_training_candidates_and_score_names_the_model(tiny_gpt2, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    data = _file(tmp_path / "cands.jsonl", 0, 3)
    cfg = tmp_path / "rm.yaml"
    cfg.write_text(f"backbone: {tiny_gpt2}\nmax_length: 64\nconsensus: tfidf\nbf16: false\n")
    runner = CliRunner()
    r = runner.invoke(app, ["train-rm", "--samples", str(data), "--out", str(tmp_path / "rm"), "--config", str(cfg),
                            "--max-steps", "2"])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "rm" / TRAINING_FILE).read_text())
    assert record["candidates"] == 9 and len(record["hashes"]) == record["distinct"] == 8  # T/1 has "x + 1" twice
    assert [s["path"] for s in record["sources"]] == [str(data.resolve())] and len(record["sources"][0]["sha256"]) == 64
    r = runner.invoke(app, ["score", "--samples", str(data), "--model", str(tmp_path / "rm"),
                            "--out", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.meta.json").read_text())["model"] == str((tmp_path / "rm").resolve())
    r = runner.invoke(app, ["eval", "--samples", str(data), "--scores", f"rm={tmp_path / 's.jsonl'}",
                            "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "IN-SAMPLE" in r.output and (tmp_path / "ev" / "reliability.png").stat().st_size > 1000
