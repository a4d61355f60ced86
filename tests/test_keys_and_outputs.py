"""Records are keyed by (language, problem_id); duplicates, outputs over inputs, JSON outputs, API, offline errors.

Each test here failed on the code before issue 13 (languages merged, duplicates counted, --out over --samples...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardranker.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def _verdict_lines(language: str, passes_per_problem: list[int], n: int = 5) -> list[dict]:
    """Verdicts for problems HumanEval_<i>_x, all named the same in every language, as MultiPL-E names them."""
    return [{"problem_id": f"HumanEval_{i}_x", "sample_id": j, "status": "OK" if j < c else "Exception",
             "passed": j < c, "language": language, "exit_code": 0 if j < c else 1}
            for i, c in enumerate(passes_per_problem) for j in range(n)]


def _write(path: Path, rows) -> Path:
    path.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in rows))
    return path


def test_concatenated_languages_are_kept_apart_per_language(tmp_path):
    js = _verdict_lines("js", [3, 2, 2, 2])   # 60, 40, 40, 40 -> 45.00
    cpp = _verdict_lines("cpp", [2, 2, 2, 1])  # 40, 40, 40, 20 -> 35.00
    both = _write(tmp_path / "v.jsonl", js + cpp)  # `cat v_js.jsonl v_cpp.jsonl > v.jsonl`
    out = tmp_path / "m.json"
    res = _cli("metrics", "--verdicts", both, "--k", 1, "--k", 10, "--json", out)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["per_language"]["js"]["pass@1"] == pytest.approx(45.0)
    assert report["per_language"]["cpp"]["pass@1"] == pytest.approx(35.0)
    assert report["per_language"]["js"]["problems"] == 4 and report["per_language"]["js"]["candidates"] == 20
    assert report["overall"]["problems"] == 8 and report["overall"]["pass@1"] == pytest.approx(40.0)
    assert report["overall"]["pass@10"] is None and report["per_language"]["cpp"]["pass@10"] is None
    assert "n/a" in res.output and "js" in res.output and "cpp" in res.output


def test_a_doubled_verdicts_file_is_an_error_naming_both_lines(tmp_path):
    rows = _verdict_lines("py", [1, 1])
    doubled = _write(tmp_path / "v.jsonl", rows + rows)  # `cat v.jsonl v.jsonl`
    res = _cli("metrics", "--verdicts", doubled, "--k", 1)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "v.jsonl:11: duplicate record" in res.output and "first at" in res.output and "v.jsonl:1" in res.output


def test_a_doubled_samples_or_scores_file_is_an_error(tmp_path):
    from rewardranker.errors import RewardRankerError
    from rewardranker.metrics import load_scores
    from rewardranker.problems import load_candidates

    s = {"problem_id": "HumanEval/53", "sample_id": 0, "completion": "    return x + y\n"}
    with pytest.raises(RewardRankerError, match=r"s.jsonl:2: duplicate record.*first at .*s.jsonl:1"):
        load_candidates(_write(tmp_path / "s.jsonl", [s, s]))
    sc = {"problem_id": "a", "sample_id": 0, "score": 1.0, "language": "py"}
    with pytest.raises(RewardRankerError, match=r"sc.jsonl:2: duplicate record"):
        load_scores(_write(tmp_path / "sc.jsonl", [sc, sc]))


def test_the_folder_of_all_eight_languages_loads_and_samples_name_their_language(shared_data, tmp_path):
    from rewardranker.problems import index_problems, load_candidates, load_problems

    problems = load_problems(shared_data / "multipl-e")
    assert len(index_problems(problems)) == len(problems) == 1277
    rows = [{"problem_id": "HumanEval_53_add", "sample_id": 0, "completion": "    return x + y\n", "language": "py"},
            {"problem_id": "HumanEval_53_add", "sample_id": 0, "completion": "  return x + y;\n}\n", "language": "js"}]
    cands = load_candidates(_write(tmp_path / "s.jsonl", rows), problems)
    assert [s.key for s in cands.samples] == [("py", "HumanEval_53_add", 0), ("js", "HumanEval_53_add", 0)]
    res = _cli("execute", "--problems", shared_data / "multipl-e", "--samples", tmp_path / "s.jsonl",
               "--out", tmp_path / "v.jsonl", "--cache", tmp_path / "c.sqlite", "--workers", 1)
    assert res.exit_code == 0, res.output
    verdicts = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [(v["language"], v["passed"]) for v in verdicts] == [("py", True), ("js", True)]


def test_a_sample_without_language_takes_its_problems_or_says_it_is_ambiguous(shared_data, tmp_path):
    from rewardranker.errors import RewardRankerError
    from rewardranker.problems import load_candidates, load_problems

    rows = [{"problem_id": "HumanEval_53_add", "sample_id": 0, "completion": "    return x + y\n"}]
    f = _write(tmp_path / "s.jsonl", rows)
    one = load_candidates(f, load_problems(shared_data / "multipl-e" / "humaneval-py-reworded.jsonl"))
    assert one.samples[0].language == "py"
    with pytest.raises(RewardRankerError, match=r"'HumanEval_53_add' exists in 8 languages .*'language' field"):
        load_candidates(f, load_problems(shared_data / "multipl-e"))


def test_scores_join_verdicts_by_language_too():
    from rewardranker.errors import RewardRankerError
    from rewardranker.metrics import group_outcomes, summarize
    from rewardranker.records import Score, Verdict

    verdicts = [Verdict("p", 0, "OK", True, language="js"), Verdict("p", 1, "Exception", False, language="js"),
                Verdict("p", 0, "Exception", False, language="cpp"), Verdict("p", 1, "OK", True, language="cpp")]
    scores = [Score("p", 0, 1.0, "js"), Score("p", 1, 0.0, "js"), Score("p", 0, 1.0, "cpp"), Score("p", 1, 0.0, "cpp")]
    report = summarize(group_outcomes(verdicts, scores), ks=(1,))
    assert report["per_language"]["js"]["ranked pass@1"] == 100.0
    assert report["per_language"]["cpp"]["ranked pass@1"] == 0.0
    with pytest.raises(RewardRankerError, match="has no language, and that problem id exists in cpp, js"):
        group_outcomes(verdicts, [Score("p", i, 0.0) for i in (0, 1)])


def test_execute_refuses_an_output_that_is_its_input_and_keeps_the_input(tmp_path):
    rows = [{"problem_id": "HumanEval/53", "sample_id": 0, "completion": "    return x + y\n"}]
    samples = _write(tmp_path / "s.jsonl", rows)
    before = samples.read_bytes()
    res = _cli("execute", "--problems", "humaneval", "--samples", samples, "--out", samples)
    assert res.exit_code == 1 and "is also an input" in res.output and "Traceback" not in res.output
    same_file_other_name = tmp_path / "sub" / ".." / "s.jsonl"
    (tmp_path / "sub").mkdir()
    res = _cli("execute", "--problems", "humaneval", "--samples", samples, "--out", same_file_other_name)
    assert res.exit_code == 1 and "is also an input" in res.output
    assert samples.read_bytes() == before


def test_folders_where_files_are_expected_are_clear_errors(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    for args, expected in [
        (("metrics", "--verdicts", folder), "not a MultiPL-E results folder"),
        (("execute", "--problems", "humaneval", "--samples", folder, "--out", tmp_path / "v.jsonl"),
         "neither a MultiPL-E completions folder"),
        (("execute", "--problems", "humaneval", "--samples", tmp_path / "nothing.jsonl", "--out", folder),
         "is a folder; give a file path"),
        (("execute", "--problems", folder, "--samples", tmp_path / "nothing.jsonl", "--out", tmp_path / "v.jsonl"),
         "folder holds no .jsonl"),
        (("eval", "--samples", tmp_path / "nothing.jsonl", "--scores", tmp_path / "nothing.jsonl",
          "--out", folder / "notes.txt"), "is a file; give a folder path"),  # and the reverse
    ]:
        if "nothing.jsonl" in str(args):
            _write(tmp_path / "nothing.jsonl", [{"problem_id": "HumanEval/53", "sample_id": 0, "completion": "x"}])
        res = _cli(*args)
        assert res.exit_code == 1 and expected in res.output and "Traceback" not in res.output, (args, res.output)


def test_json_outputs_have_keys_without_spaces_and_run_metadata(tmp_path):
    v = _write(tmp_path / "v.jsonl", _verdict_lines("py", [1, 2]))
    s = _write(tmp_path / "s.jsonl", [{"problem_id": r["problem_id"], "sample_id": r["sample_id"], "score": 1.0,
                                       "language": "py"} for r in _verdict_lines("py", [1, 2])])
    out = tmp_path / "m.json"
    assert _cli("metrics", "--verdicts", v, "--scores", s, "--k", 1, "--json", out).exit_code == 0
    report = json.loads(out.read_text())

    def keys(obj):
        if isinstance(obj, dict):
            return [*obj, *(k for x in obj.values() for k in keys(x))]
        return [k for x in obj for k in keys(x)] if isinstance(obj, list) else []

    assert "ranked_pass@1" in report["overall"] and "oracle_pass@n" in report["overall"]
    assert not [k for k in keys(report) if " " in k]
    run = report["run"]
    from rewardranker import __version__

    assert run["version"] == __version__ and run["command"] == "metrics" and run["config"]["k"] == [1]
    assert run["config"]["verdicts"] == str(v) and run["date"].endswith("+00:00")


def test_version_flag():
    from rewardranker import __version__

    res = _cli("--version")
    assert res.exit_code == 0 and res.output.strip() == f"rewardranker {__version__}"


def test_public_api_is_lazy_and_complete():
    code = ("import sys, rewardranker as rr; assert 'torch' not in sys.modules, 'import pulled in torch'; "
            "from rewardranker import execute, load_problems, RewardModel, ExecutionConfig, Sample; "
            "missing = [n for n in rr.__all__ if getattr(rr, n, None) is None]; assert not missing, missing; "
            "assert sorted(rr.__all__) == sorted(['__version__', *rr._EXPORTS]), 'keep __all__ and _EXPORTS equal'; "
            "print(len(rr.__all__))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=False)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) >= 20


@pytest.mark.parametrize("env, partial_cache, expected", [
    ({"HF_HUB_OFFLINE": "1"}, False,
     "HF_HUB_OFFLINE is set and nuprl/MultiPL-E humaneval-cpp is not in the local cache"),
    ({"HF_HUB_OFFLINE": "", "HF_DATASETS_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"}, False,
     "the Hugging Face Hub is unreachable (127.0.0.1:9"),
    ({"HF_HUB_OFFLINE": "1"}, True,  # a cache that lacks this config: `datasets` looks, then the same one line
     "HF_HUB_OFFLINE is set and nuprl/MultiPL-E humaneval-cpp is not in the local cache"),
])
def test_multipl_e_from_the_hub_without_network_fails_fast_in_one_line(tmp_path, env, partial_cache, expected):
    samples = _write(tmp_path / "s.jsonl", [{"problem_id": "x", "sample_id": 0, "completion": "x"}])
    if partial_cache:
        (tmp_path / "hf" / "hub" / "datasets--nuprl--MultiPL-E").mkdir(parents=True)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), **env}
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "rewardranker", "execute", "--problems", "multipl-e:cpp",
                        "--samples", str(samples), "--out", str(tmp_path / "v.jsonl")],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert time.monotonic() - start < 60  # seconds, not a network timeout
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert expected in r.stderr and "point --problems at a local copy" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_base_url_without_scheme_is_a_config_error_not_retried():
    from rewardranker.errors import ConfigError
    from rewardranker.generation import GenerationConfig

    with pytest.raises(ConfigError, match="base_url.*needs http:// or https://"):
        GenerationConfig(backend="openai", model="m", base_url="127.0.0.1:8000/v1")
    with pytest.raises(ConfigError, match="base_url"):
        GenerationConfig(backend="openai", model="m", base_url="localhost:8000/v1")


def test_reward_pairs_and_eval_rows_never_mix_languages_of_one_problem_id():
    from rewardranker.records import Problem, Sample
    from rewardranker.reward import mine_pairs
    from rewardranker.reward.evaluate import collect

    samples = [Sample("p", 0, "a", language="py"), Sample("p", 1, "b", language="py"),
               Sample("p", 0, "c", language="js"), Sample("p", 1, "d", language="js")]
    passed = {("py", "p", 0): True, ("py", "p", 1): False, ("js", "p", 0): False, ("js", "p", 1): False}
    pairs = mine_pairs(samples, passed, 10)
    assert [(p.language, p.problem_id, p.chosen, p.rejected) for p in pairs] == [("py", "p", 0, 1)]
    problems = [Problem("p", "py", "", ""), Problem("p", "js", "", "")]
    rows = collect(problems, samples, passed, {"rm": {s.key: float(i) for i, s in enumerate(samples)}})
    assert sorted((r.language, r.passed) for r in rows) == [("js", [False, False]), ("py", [True, False])]
