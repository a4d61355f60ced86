"""`rewardranker gen-tests`: CodeT's prompt, assert extraction and dedupe on hand-written model outputs, and the
whole path (tiny generator taught the format in the test -> tests file -> `score --tests` agreement -> eval),
through the in-process hf backend and through the OpenAI-compatible backend against a local server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.errors import RecordError, RewardRankerError
from rewardranker.generation.testgen import (
    dedupe,
    extract_asserts,
    load_generated_tests,
    prompt_for_tests,
    sft_examples,
)
from rewardranker.records import Problem

PROMPT = 'def add_one(x):\n    """Return x plus one."""\n'


def _problem(**kw) -> Problem:
    return Problem(**{"problem_id": "P/0", "language": "py", "prompt": PROMPT, "tests": "", "entry_point": "add_one",
                      **kw})


def test_codet_prompt_is_the_problem_a_pass_body_and_an_open_assert():
    p = prompt_for_tests(_problem())
    assert p == PROMPT + "    pass\n\n# check the correctness of add_one\nassert"
    check = prompt_for_tests(_problem(), style="check")
    assert check.endswith("    pass\n\n\ndef check(candidate):\n    assert candidate")
    # no entry_point: the last top-level def of the prompt is the function under test
    assert prompt_for_tests(_problem(entry_point=None, prompt="def helper():\n    pass\n\n" + PROMPT)).endswith(
        "correctness of add_one\nassert")
    with pytest.raises(RewardRankerError, match="Python asserts.*'js'"):
        prompt_for_tests(_problem(language="js"))


def test_extraction_keeps_parsed_asserts_that_call_the_entry_point():
    # what a model continues after "assert": good, reformatted duplicate, other function, truncated,
    # multi-line, placeholder, code after a stop string, and a comment between asserts
    raw = (" add_one(1) == 2\n"
           "assert add_one(1)==2  # same test, other spacing\n"
           "assert other(3) == 4\n"
           "assert add_one(len([1, 2])) == 3\n"
           "# edge cases\n"
           "assert add_one(\n    -1) == 0\n"
           "assert add_one(7 ==\n"
           "assert ______ == add_one(5)\n"
           "print(add_one(2))\nassert add_one(9) == 10")
    got = extract_asserts(raw, "add_one")
    assert got == ["assert add_one(1) == 2", "assert add_one(1)==2", "assert add_one(len([1, 2])) == 3",
                   "assert add_one(\n    -1) == 0", "assert ______ == add_one(5)", "assert add_one(9) == 10"]
    # "add_one" inside a string or as an attribute is not a call of the entry point
    assert extract_asserts(" 'add_one' == 'x'\nassert m.add_one(1) == 2\n", "add_one") == []


def test_extraction_from_a_check_stub_renames_candidate_to_the_entry_point():
    raw = "(1) == 2\n    assert candidate(2) == 3\n    assert len([]) == 0\n\ncheck(add_one)\n"
    assert extract_asserts(raw, "add_one", style="check") == ["assert add_one(1) == 2", "assert add_one(2) == 3"]


def test_dedupe_by_normalized_text_keeps_first_and_caps():
    asserts = ["assert f(1) == 2", "assert f(1)==2", "assert f('a') == 1", 'assert f("a") == 1',
               "assert (f(1) == 2)", "assert f(2) == 3", "assert f(3) == 4"]
    assert dedupe(asserts, cap=100) == ["assert f(1) == 2", "assert f('a') == 1", "assert f(2) == 3",
                                        "assert f(3) == 4"]
    assert dedupe(asserts, cap=2) == ["assert f(1) == 2", "assert f('a') == 1"]


def test_sft_examples_teach_the_same_format_the_extractor_reads():
    p = _problem(tests="def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(0) == 1\n")
    for style in ("codet", "check"):
        [(prompt, target)] = sft_examples([p], style)
        assert prompt == prompt_for_tests(p, style)
        assert extract_asserts(target, "add_one", style) == ["assert add_one(1) == 2", "assert add_one(0) == 1"]


def test_tests_file_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text(json.dumps({"problem_id": "a", "generated_tests": ["assert f(1)"]}) + "\n"
                   + json.dumps({"problem_id": "b", "generated_tests": "assert f(1)"}) + "\n")
    with pytest.raises(RecordError, match=r"t.jsonl:2: field 'generated_tests'"):
        load_generated_tests(bad)
    bad.write_text(json.dumps({"problem_id": "a", "generated_tests": []}) + "\n" * 2
                   + json.dumps({"problem_id": "a", "generated_tests": []}) + "\n")
    with pytest.raises(RecordError, match=r"t.jsonl:3: field 'problem_id' = 'a' appears twice"):
        load_generated_tests(bad)
    # the reranking layout (task_id + generated_tests) is read too
    bad.write_text(json.dumps({"task_id": "HumanEval/0", "generated_tests": ["assert f(1)"], "completions": []}))
    assert load_generated_tests(bad) == {"HumanEval/0": ["assert f(1)"]}


# --------------------------------------------------------------------------- end to end with a tiny generator

N_TOY = 6


def _toy_problems() -> list[Problem]:
    return [Problem(f"toy/{i}", "py", f"def f{i}(x):\n", entry_point=f"f{i}",
                    tests=f"def check(candidate):\n    assert candidate(1) == {i + 1}\n    assert candidate(5) == {i + 5}\n",
                    stop_tokens=("\ndef",), canonical_solution=f"    return x + {i}\n") for i in range(N_TOY)]


@pytest.fixture(scope="module")
def test_writer(tmp_path_factory):
    """A tiny GPT-2 built here and taught (40 SFT steps) to write its problems' asserts in CodeT's shape."""
    from rewardranker.generation import build_local_generator
    from rewardranker.policy import SFTConfig, run_sft

    examples = sft_examples(_toy_problems())
    base = build_local_generator([p + t for p, t in examples] * 5, tmp_path_factory.mktemp("gen0"), vocab_size=300)
    cfg = SFTConfig(max_steps=40, batch_size=6, learning_rate=3e-3, logging_steps=10)
    return run_sft(cfg, str(base), examples, tmp_path_factory.mktemp("sft") / "sft")


def _candidates_file(path):
    """Per toy problem: two right bodies and two wrong ones, with reference labels."""
    rows = [{"task_id": p.problem_id, "prompt": p.prompt, "entry_point": p.entry_point,
             "completions": [f"    return x + {i}\n", f"    return x - {i} - 1\n", f"    return {i} + x\n",
                             "    return 0\n"],
             "reference_passed": [True, False, True, False]} for i, p in enumerate(_toy_problems())]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _holds(assert_text: str, i: int) -> bool:
    """Whether a generated assert is true of toy problem i's reference solution."""
    import subprocess
    import sys

    program = f"def f{i}(x):\n    return x + {i}\n{assert_text}\n"
    return subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30, check=False).returncode == 0


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _check_tests_file(path):
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["problem_id"] for r in rows] == [f"toy/{i}" for i in range(N_TOY)]
    for r in rows:
        assert r["generated_tests"], r  # the taught generator writes asserts for every problem
        assert all(t.startswith(f"assert {r['entry_point']}(") for t in r["generated_tests"])
        assert len(r["generated_tests"]) < r["asserts_found"]  # greedy samples repeat: dedupe removed copies
    return rows


@pytest.mark.slow
def test_gen_tests_feeds_agreement_scoring_end_to_end(test_writer, tmp_path, monkeypatch):
    monkeypatch.setenv("REWARDRANKER_CACHE", str(tmp_path / "cache.sqlite"))
    cands = _candidates_file(tmp_path / "cands.jsonl")
    out = _run("gen-tests", "--samples", cands, "--model", test_writer, "--out", tmp_path / "tests.jsonl",
               "--n", 2, "--temperature", 0, "--max-new-tokens", 48)
    assert f"problems {N_TOY}" in out
    rows = _check_tests_file(tmp_path / "tests.jsonl")
    assert (tmp_path / "tests.codet.samples.raw.jsonl").exists()  # the sampled text is kept beside the tests
    _run("score", "--samples", cands, "--mode", "agreement", "--tests", tmp_path / "tests.jsonl",
         "--out", tmp_path / "agr.jsonl")
    lines = (tmp_path / "agr.jsonl").read_text().splitlines()
    scores = {(s["problem_id"], s["sample_id"]): s["score"] for s in map(json.loads, lines)}
    right_asserts = [r for r in rows if any(_holds(t, int(r["problem_id"][4:])) for t in r["generated_tests"])]
    assert len(right_asserts) >= N_TOY // 2, rows  # the generator learned correct expected values
    for r in right_asserts:  # where a test is right, right bodies outscore wrong ones
        pid = r["problem_id"]
        assert min(scores[(pid, 0)], scores[(pid, 2)]) > max(scores[(pid, 1)], scores[(pid, 3)])
    _run("eval", "--samples", cands, "--scores", f"agreement={tmp_path / 'agr.jsonl'}", "--out", tmp_path / "ev")
    report = json.loads((tmp_path / "ev" / "report.json").read_text())["overall"]
    assert report["modes"]["agreement"]["ranked_pass@1"] > report["random_pass@1"] == 50.0


@pytest.mark.slow
def test_gen_tests_through_the_openai_backend_and_a_local_server(test_writer, tmp_path):
    from rewardranker.generation.local_server import LocalCompletionServer

    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"task_id": p.problem_id, "prompt": p.prompt, "entry_point": p.entry_point,
                                            "test": p.tests}) + "\n" for p in _toy_problems()))
    with LocalCompletionServer(str(test_writer)) as server:
        _run("gen-tests", "--problems", problems, "--backend", "openai", "--base-url", server.url, "--model", "tiny",
             "--out", tmp_path / "tests.jsonl", "--n", 2, "--temperature", 0, "--max-new-tokens", 48,
             "--concurrency", 2)
    _check_tests_file(tmp_path / "tests.jsonl")


def test_gen_tests_cli_refuses_ambiguous_input_and_other_languages(tmp_path):
    result = CliRunner().invoke(app, ["gen-tests", "--model", "m", "--out", str(tmp_path / "t.jsonl")])
    assert result.exit_code == 1 and "exactly one of --problems and --samples" in result.output
    p = tmp_path / "js.jsonl"
    p.write_text(json.dumps({"name": "HumanEval_0_x", "language": "js", "prompt": "function x() {\n",
                             "tests": "", "stop_tokens": ["\n}"]}) + "\n")
    result = CliRunner().invoke(app, ["gen-tests", "--problems", str(p), "--model", "m", "--out", str(tmp_path / "t")])
    assert result.exit_code == 1 and "Python asserts" in result.output and "Traceback" not in result.output
    cands = _candidates_file(tmp_path / "cands.jsonl")
    before = cands.read_text()
    result = CliRunner().invoke(app, ["gen-tests", "--samples", str(cands), "--model", "m", "--out", str(cands)])
    assert result.exit_code == 1 and cands.read_text() == before  # never writes over its input
