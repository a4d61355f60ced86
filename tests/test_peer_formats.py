"""Files other evaluation tools write, read as they are, end to end through `execute` / `metrics`.

Each test writes a small file in the tool's documented layout (Python problems, so execution stays fast):
EvalPlus samples JSONL (`task_id` + `solution` or `completion`) and its folder (`HumanEval_53/0.py`),
bigcode-evaluation-harness `generations.json` (+ `references.json`), MultiPL-E completions and results folders.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.errors import RecordError, RewardRankerError
from rewardranker.problems import humaneval_problems, load_candidates, load_problems

runner = CliRunner()
RIGHT, WRONG, BROKEN = "    return x + y\n", "    return x - y\n", "    return (\n"


def _he53():
    return next(p for p in humaneval_problems() if p.problem_id == "HumanEval/53")


def _mpe53(shared_data: Path):
    path = shared_data / "multipl-e" / "humaneval-py-reworded.jsonl"
    return next(p for p in load_problems(path) if p.problem_id == "HumanEval_53_add")


def _execute(tmp_path: Path, samples: Path, *extra) -> tuple[list[dict], str]:
    out = tmp_path / "verdicts.jsonl"
    res = runner.invoke(app, ["execute", "--samples", str(samples), "--out", str(out), "--workers", "1",
                              "--cache", str(tmp_path / "cache.sqlite"), *map(str, extra)])
    assert res.exit_code == 0, res.output
    return [json.loads(x) for x in out.read_text().splitlines()], res.output


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evalplus_jsonl_with_solutions_runs_against_builtin_humaneval(tmp_path):
    prompt = _he53().prompt
    f = _jsonl(tmp_path / "samples.jsonl", [{"task_id": "HumanEval/53", "solution": prompt + RIGHT},
                                            {"task_id": "HumanEval/53", "solution": prompt + WRONG}])
    verdicts, output = _execute(tmp_path, f)
    assert "detected EvalPlus samples JSONL (task_id + solution); problems: built-in HumanEval" in output
    assert [(v["problem_id"], v["sample_id"], v["language"], v["passed"]) for v in verdicts] == [
        ("HumanEval/53", 0, "py", True), ("HumanEval/53", 1, "py", False)]


def test_evalplus_jsonl_with_completions_follows_the_prompt(tmp_path):
    f = _jsonl(tmp_path / "samples.jsonl", [{"task_id": "HumanEval/53", "completion": c} for c in (WRONG, RIGHT)])
    verdicts, output = _execute(tmp_path, f, "--problems", "humaneval")
    assert "EvalPlus samples JSONL (task_id + completion)" in output
    assert [v["passed"] for v in verdicts] == [False, True]


def test_evalplus_folder_layout(tmp_path):
    root = tmp_path / "humaneval" / "model_temp_0.8"
    (root / "HumanEval_53").mkdir(parents=True)
    for i, body in enumerate([RIGHT, BROKEN, WRONG]):
        (root / "HumanEval_53" / f"{i}.py").write_text(_he53().prompt + body)
    verdicts, output = _execute(tmp_path, root)
    assert "detected EvalPlus samples folder (1 task folders of <n>.py)" in output
    assert [(v["problem_id"], v["sample_id"], v["status"]) for v in verdicts] == [
        ("HumanEval/53", 0, "OK"), ("HumanEval/53", 1, "SyntaxError"), ("HumanEval/53", 2, "Exception")]


def test_bigcode_generations_for_humaneval_are_matched_by_prompt(tmp_path):
    he = {p.problem_id: p for p in humaneval_problems()}
    # the harness writes prompt + completion for every sample, one list per problem, in the task's order
    gens = [[he["HumanEval/0"].prompt.strip() + "\n    return False\n"],
            [he["HumanEval/53"].prompt.strip() + "\n" + RIGHT, he["HumanEval/53"].prompt.strip() + "\n" + WRONG]]
    f = tmp_path / "generations.json"
    f.write_text(json.dumps(gens))
    verdicts, output = _execute(tmp_path, f, "--task", "humaneval")
    assert "bigcode-evaluation-harness generations (2 problems, task humaneval; matched by prompt)" in output
    assert [(v["problem_id"], v["sample_id"], v["passed"]) for v in verdicts] == [
        ("HumanEval/0", 0, False), ("HumanEval/53", 0, True), ("HumanEval/53", 1, False)]


def test_bigcode_multiple_generations_with_references_need_no_problems(tmp_path, shared_data):
    p = _mpe53(shared_data)
    gens = [[p.prompt.strip() + "\n" + RIGHT, p.prompt.strip() + "\n" + WRONG]]
    (tmp_path / "generations_multiple-py.json").write_text(json.dumps(gens))
    (tmp_path / "references_multiple-py.json").write_text(json.dumps([p.tests]))  # --save_references output
    verdicts, output = _execute(tmp_path, tmp_path / "generations_multiple-py.json", "--task", "multiple-py")
    assert "with references_multiple-py.json" in output
    assert [(v["problem_id"], v["language"], v["passed"]) for v in verdicts] == [
        ("multiple-py/0", "py", True), ("multiple-py/0", "py", False)]
    # with the task's problems given, the same generations get MultiPL-E's problem ids
    verdicts, _ = _execute(tmp_path, tmp_path / "generations_multiple-py.json", "--task", "multiple-py",
                           "--problems", shared_data / "multipl-e" / "humaneval-py-reworded.jsonl")
    assert {v["problem_id"] for v in verdicts} == {"HumanEval_53_add"}
    # without --task, the prompt alone finds the problem among all eight languages
    cands = load_candidates(tmp_path / "generations_multiple-py.json", load_problems(shared_data / "multipl-e"))
    assert {s.key for s in cands.samples} == {("py", "HumanEval_53_add", 0), ("py", "HumanEval_53_add", 1)}


def test_bigcode_errors_name_the_task_problem(tmp_path):
    f = tmp_path / "generations.json"
    f.write_text(json.dumps([["print('no prompt here')\n"]]))
    with pytest.raises(RewardRankerError, match=r"problem #0 \(0-based\): its programs start with no known prompt"):
        load_candidates(f, task="humaneval")
    with pytest.raises(RewardRankerError, match="--task 'apps' is not supported"):
        load_candidates(f, task="apps")
    f.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(RecordError, match="not a bigcode-evaluation-harness generations file"):
        load_candidates(f, task="humaneval")


def _multipl_e_problem_file(p, completions, gz: bool, folder: Path) -> Path:
    doc = {"name": p.problem_id, "language": p.language, "temperature": 0.2, "top_p": 0.95, "max_tokens": 512,
           "prompt": p.prompt, "tests": p.tests, "stop_tokens": list(p.stop_tokens), "completions": completions}
    path = folder / (p.problem_id + (".json.gz" if gz else ".json"))
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            json.dump(doc, f)
    else:
        path.write_text(json.dumps(doc))
    return path


def _multipl_e_results_file(p, statuses, folder: Path) -> Path:
    results = [{"program": p.prompt + "...", "status": s, "stdout": "", "stderr": "", "exit_code": 0 if s == "OK" else 1,
                "timestamp": 0} for s in statuses]
    doc = {"name": p.problem_id, "language": p.language, "prompt": p.prompt, "tests": p.tests, "results": results}
    path = folder / f"{p.problem_id}.results.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(doc, f)
    return path


def test_multipl_e_completions_folder_runs_without_a_problems_file_and_compares_with_its_results(tmp_path, shared_data):
    py = {p.problem_id: p for p in load_problems(shared_data / "multipl-e" / "humaneval-py-reworded.jsonl")}
    folder = tmp_path / "completions"
    folder.mkdir()
    _multipl_e_problem_file(py["HumanEval_53_add"], [RIGHT, WRONG, BROKEN], gz=True, folder=folder)
    _multipl_e_problem_file(py["HumanEval_0_has_close_elements"], ["    return False\n"], gz=False, folder=folder)
    verdicts, output = _execute(tmp_path, folder)
    assert "detected MultiPL-E completions folder (2 problem files)" in output
    got = {(v["problem_id"], v["sample_id"]): v["status"] for v in verdicts}
    assert got == {("HumanEval_0_has_close_elements", 0): "Exception", ("HumanEval_53_add", 0): "OK",
                   ("HumanEval_53_add", 1): "Exception", ("HumanEval_53_add", 2): "SyntaxError"}

    # MultiPL-E's own results for the same completions, with one deliberate disagreement (sample 1 "passing")
    results = tmp_path / "results"
    results.mkdir()
    _multipl_e_results_file(py["HumanEval_53_add"], ["OK", "OK", "SyntaxError"], results)
    _multipl_e_results_file(py["HumanEval_0_has_close_elements"], ["Exception"], results)
    out = tmp_path / "cmp.json"
    res = runner.invoke(app, ["compare-verdicts", "--ours", str(tmp_path / "verdicts.jsonl"), "--theirs", str(results),
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "detected MultiPL-E results folder (2 problem files)" in res.output
    cmp = json.loads(out.read_text())
    assert cmp["overall"] == {"compared": 4, "same_passed": 3, "same_status": 3, "only_ours": 0, "only_theirs": 0}
    assert [(d["problem_id"], d["sample_id"], d["ours"]["status"], d["theirs"]["status"])
            for d in cmp["disagreements"]] == [("HumanEval_53_add", 1, "Exception", "OK")]
    assert cmp["run"]["command"] == "compare-verdicts"

    # the results folder is also a verdicts source for `metrics`
    res = runner.invoke(app, ["metrics", "--verdicts", str(results), "--k", "1", "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m.json").read_text())["overall"]["pass@1"] == pytest.approx(100 * (2 / 3) / 2)


def test_multipl_e_folder_is_also_a_problems_source(tmp_path, shared_data):
    py = {p.problem_id: p for p in load_problems(shared_data / "multipl-e" / "humaneval-py-reworded.jsonl")}
    _multipl_e_problem_file(py["HumanEval_53_add"], [RIGHT], gz=True, folder=tmp_path)
    problems = load_problems(tmp_path)
    assert [(p.language, p.problem_id, p.tests) for p in problems] == [("py", "HumanEval_53_add",
                                                                        py["HumanEval_53_add"].tests)]


def test_an_unknown_layout_says_what_was_tried_and_what_is_missing(tmp_path):
    f = _jsonl(tmp_path / "x.jsonl", [{"id": 1, "text": "print(1)"}])
    with pytest.raises(RecordError) as e:
        load_candidates(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}:1:") and "not a known candidates layout" in msg
    for tried in ("rewardranker samples (missing 'problem_id', 'sample_id', 'completion')",
                  "EvalPlus samples (missing 'task_id', 'completion' or 'solution')",
                  "reranking layout (missing", "CodeT layout (missing"):
        assert tried in msg


def test_compare_verdicts_matches_an_older_file_without_languages():
    from rewardranker.compare import compare_verdicts
    from rewardranker.records import Verdict

    ours = [Verdict("HumanEval_53_add", 0, "OK", True), Verdict("HumanEval_53_add", 1, "Exception", False)]
    theirs = [Verdict("HumanEval_53_add", 0, "OK", True, language="py"),
              Verdict("HumanEval_53_add", 1, "AssertionError", False, language="py")]
    report = compare_verdicts(ours, theirs)
    assert report["overall"] == {"compared": 2, "same_passed": 2, "same_status": 2, "only_ours": 0, "only_theirs": 0}
