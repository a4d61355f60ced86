from __future__ import annotations

import json

import pytest

from rewardranker.errors import RecordError
from rewardranker.problems import humaneval_problems, load_candidates, load_problems, truncate


def test_truncate_cuts_at_earliest_stop_token():
    assert truncate("    return 1\n\ndef g():\n#x", ("\n#", "\ndef")) == "    return 1\n"
    assert truncate("no stop here", ("\ndef",)) == "no stop here"


def test_humaneval_is_built_in_and_programs_are_prompt_completion_tests():
    problems = humaneval_problems()
    assert len(problems) == 164
    p = problems[0]
    assert p.language == "py" and p.entry_point == "has_close_elements"
    assert p.tests.rstrip().endswith("check(has_close_elements)")


def test_multipl_e_folder_loads_all_languages(shared_data):
    problems = load_problems(shared_data / "multipl-e")
    assert {p.language for p in problems} == {"py", "cpp", "java", "php", "ts", "js", "cs", "sh"}
    cpp = next(p for p in problems if p.language == "cpp")
    assert cpp.stop_tokens == ("\n}",)


def test_reranking_file_gives_samples_labels_and_generated_tests(shared_data):
    c = load_candidates(shared_data / "reranking" / "humaneval-codegen16b-dev.jsonl")
    assert len(c.samples) == 8200 and len(c.problems) == 82
    assert sum(c.labels.values()) == 1923
    assert c.generated_tests["HumanEval/0"]


def test_malformed_problem_file_names_file_line_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"task_id": "t/0", "prompt": "def f():\n", "test": "pass"}) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl:1: field 'entry_point'"):
        load_problems(f)


def test_bad_json_line_and_bad_language_are_reported(tmp_path):
    f = tmp_path / "p.jsonl"
    ok = {"name": "a", "language": "py", "prompt": "", "tests": "", "stop_tokens": []}
    f.write_text(json.dumps(ok) + "\n{oops\n")
    with pytest.raises(RecordError, match=r"p.jsonl:2:"):
        load_problems(f)
    f.write_text(json.dumps({**ok, "language": "rb"}) + "\n")
    with pytest.raises(RecordError, match=r"p.jsonl:1: field 'language' = 'rb'"):
        load_problems(f)


def test_samples_file_with_wrong_type_names_field(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"problem_id": "a", "sample_id": "zero", "completion": "x"}) + "\n")
    with pytest.raises(RecordError, match=r"s.jsonl:1: field 'sample_id'"):
        load_candidates(f)


def test_codet_layout_is_matched_to_problems_by_prompt(tmp_path):
    problems = humaneval_problems()[:2]
    f = tmp_path / "codet.jsonl"
    f.write_text(json.dumps({"prompt": problems[1].prompt, "samples": ["    return 1\n", "    return 2\n"]}) + "\n")
    c = load_candidates(f, problems)
    assert [(s.problem_id, s.sample_id) for s in c.samples] == [(problems[1].problem_id, 0), (problems[1].problem_id, 1)]
    f.write_text(json.dumps({"prompt": "def nothing():\n", "samples": ["x"]}) + "\n")
    with pytest.raises(RecordError, match=r"codet.jsonl:1: field 'prompt' matches no problem"):
        load_candidates(f, problems)


def test_empty_samples_file_is_an_error(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("\n")
    with pytest.raises(RecordError, match="empty.jsonl: file holds no records"):
        load_candidates(f)
