"""Sampling with the transformers backend: determinism, stop tokens, resume, settings guard, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from generation_helpers import CORPUS, toy_problems
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.generation import GenerationConfig, build_local_generator, sample_problems
from rewardranker.runio import read_jsonl


def _cfg(model: Path, **kw) -> GenerationConfig:
    base = dict(model=str(model), n=3, temperature=1.0, top_p=1.0, max_new_tokens=24, batch_size=4, seed=7)
    return GenerationConfig(**{**base, **kw})


def test_same_seed_same_samples_other_seed_differs(tiny_gpt2, tmp_path):
    probs = toy_problems()
    a = read_jsonl(sample_problems(_cfg(tiny_gpt2), probs, tmp_path / "a.jsonl", progress=False))
    b = read_jsonl(sample_problems(_cfg(tiny_gpt2), probs, tmp_path / "b.jsonl", progress=False))
    c = read_jsonl(sample_problems(_cfg(tiny_gpt2, seed=8), probs, tmp_path / "c.jsonl", progress=False))
    assert [(r["problem_id"], r["sample_id"]) for r in a] == [(p.problem_id, s) for p in probs for s in range(3)]
    assert a == b
    assert [r["completion"] for r in a] != [r["completion"] for r in c]
    assert all(len(r["logprobs"]) > 0 and max(r["logprobs"]) <= 0 for r in a)


def test_completions_cut_at_stop_tokens_and_generation_stops_there(tiny_gpt2, tmp_path):
    stops = ("e", "\n")  # frequent in the corpus, so a random model emits them within a few tokens
    cfg = _cfg(tiny_gpt2, n=4, max_new_tokens=64)
    out = sample_problems(cfg, toy_problems(stops=stops), tmp_path / "s.jsonl", progress=False)
    samples, raws = read_jsonl(out), read_jsonl(tmp_path / "s.raw.jsonl")
    assert len(samples) == len(raws) == 12
    stopped = 0
    for s, r in zip(samples, raws):
        assert (s["problem_id"], s["sample_id"]) == (r["problem_id"], r["sample_id"])
        assert not any(t in s["completion"] for t in stops)
        assert r["raw"].startswith(s["completion"])
        if r["raw"] != s["completion"]:  # a stop string was hit: generation ended on that token
            stopped += 1
            assert r["n_tokens"] < 64 and len(s["logprobs"]) == r["n_tokens"]
            tail = r["raw"][len(s["completion"]):]
            assert any(tail.startswith(t) for t in stops) and len(tail) <= 12  # nothing past the stop's token
    assert stopped >= 6  # the others ended on EOS, which a random model also emits


def test_rerun_fills_only_missing_samples(tiny_gpt2, tmp_path):
    probs, out = toy_problems(), tmp_path / "s.jsonl"
    full = read_jsonl(sample_problems(_cfg(tiny_gpt2), probs, out, progress=False))
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:4]) + "\n" + lines[4][:10])  # a run killed mid-write: torn last line
    again = read_jsonl(sample_problems(_cfg(tiny_gpt2, n=4), probs, out, progress=False))
    by_key = {(r["problem_id"], r["sample_id"]): r for r in again}
    assert all(by_key[(r["problem_id"], r["sample_id"])] == r for r in full[:4])  # kept samples untouched
    assert [(r["problem_id"], r["sample_id"]) for r in again] == [(p.problem_id, s) for p in probs for s in range(4)]
    raw_keys = [(r["problem_id"], r["sample_id"]) for r in read_jsonl(tmp_path / "s.raw.jsonl")]
    assert sorted(raw_keys) == sorted((r["problem_id"], r["sample_id"]) for r in again)


def test_rerun_with_other_settings_is_refused(tiny_gpt2, tmp_path):
    sample_problems(_cfg(tiny_gpt2, n=1), toy_problems(1), tmp_path / "s.jsonl", progress=False)
    with pytest.raises(ConfigError, match="temperature"):
        sample_problems(_cfg(tiny_gpt2, n=1, temperature=0.5), toy_problems(1), tmp_path / "s.jsonl", progress=False)


def test_greedy_llama_is_deterministic_without_a_seed_effect(tmp_path):
    d = build_local_generator(CORPUS, tmp_path / "llama", arch="llama", size="tiny", seed=1)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["eos_token_id"] < cfg["vocab_size"]
    a = read_jsonl(sample_problems(_cfg(d, temperature=0.0, n=2), toy_problems(2), tmp_path / "a.jsonl", progress=False))
    b = read_jsonl(sample_problems(_cfg(d, temperature=0.0, n=2, seed=3), toy_problems(2), tmp_path / "b.jsonl",
                                   progress=False))
    assert [r["completion"] for r in a] == [r["completion"] for r in b]
    assert a[0]["completion"] == a[1]["completion"]


@pytest.mark.parametrize("field,value", [("backend", "tgi"), ("n", 0), ("top_p", 0.0), ("temperature", -1.0),
                                         ("model", ""), ("precision", "int3"), ("retries", -1)])
def test_bad_config_names_the_field(field, value):
    base = dict(model="m")
    with pytest.raises(ConfigError, match=f"'{field}'"):
        GenerationConfig(**{**base, field: value})


def test_sample_command_writes_samples(tiny_gpt2, tmp_path):
    probs = tmp_path / "p.jsonl"
    probs.write_text("".join(json.dumps({"task_id": f"t/{i}", "prompt": f"def f{i}(x):\n", "entry_point": f"f{i}",
                                         "test": "def check(f):\n    pass\n"}) + "\n" for i in range(2)))
    out = tmp_path / "s.jsonl"
    res = CliRunner().invoke(app, ["sample", "--problems", str(probs), "--model", str(tiny_gpt2), "--out", str(out),
                                   "--n", "2", "--max-new-tokens", "8"])
    assert res.exit_code == 0, res.output
    assert len(read_jsonl(out)) == 4
    bad = CliRunner().invoke(app, ["sample", "--problems", str(probs), "--model", str(tiny_gpt2), "--out", str(out),
                                   "--top-p", "2"])
    assert bad.exit_code == 1 and "top_p" in bad.output


def test_vllm_backend_without_vllm_says_how_to_get_it(tmp_path):
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(RewardRankerError, match="pip install 'rewardranker\\[vllm\\]'"):
            sample_problems(GenerationConfig(backend="vllm", model="m"), toy_problems(1), tmp_path / "s.jsonl",
                            progress=False)
    else:  # pragma: no cover - GPU machines with the extra installed
        pytest.skip("vllm is installed: the in-process backend is exercised on GPU machines")


def test_a_smaller_rerun_keeps_earlier_samples(tiny_gpt2, tmp_path):
    out = tmp_path / "s.jsonl"
    sample_problems(_cfg(tiny_gpt2, n=2), toy_problems(3), out, progress=False)
    again = read_jsonl(sample_problems(_cfg(tiny_gpt2, n=1), toy_problems(1), out, progress=False))
    assert len(again) == 6  # nothing deleted by a run over fewer problems or samples


def test_one_problem_id_in_two_languages_gets_its_own_samples(tiny_gpt2, tmp_path):
    import dataclasses

    py = toy_problems(1)[0]
    js = dataclasses.replace(py, language="js", prompt="function f0(x) {\n")  # MultiPL-E reuses ids across languages
    out = sample_problems(_cfg(tiny_gpt2, n=2), [py, js], tmp_path / "s.jsonl", progress=False)
    rows = read_jsonl(out)
    assert [(r["language"], r["problem_id"], r["sample_id"]) for r in rows] == [
        ("py", "toy/0", 0), ("py", "toy/0", 1), ("js", "toy/0", 0), ("js", "toy/0", 1)]
    assert sample_problems(_cfg(tiny_gpt2, n=2), [py, js], out, progress=False) == out  # resume: nothing new
    assert read_jsonl(out) == rows
