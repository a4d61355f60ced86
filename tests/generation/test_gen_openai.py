"""The OpenAI-compatible backend against a local server on 127.0.0.1 serving a tiny model: results, seeds,
stop tokens, and server errors / timeouts that are retried or reported (never dropped)."""

from __future__ import annotations

import pytest
from generation_helpers import toy_problems

from rewardranker.errors import RewardRankerError
from rewardranker.generation import GenerationConfig, openai_server, sample_problems
from rewardranker.generation.local_server import LocalCompletionServer
from rewardranker.runio import read_jsonl


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_server, "BACKOFF_S", 0.01)


def _cfg(url: str, **kw) -> GenerationConfig:
    base = dict(backend="openai", model="tiny", base_url=url, n=2, max_new_tokens=12, temperature=1.0, top_p=1.0,
                concurrency=3, retries=2, timeout_s=10.0, batch_size=2, seed=5)
    return GenerationConfig(**{**base, **kw})


def test_openai_backend_samples_deterministically_and_stops(tiny_gpt2, tmp_path):
    probs = toy_problems(3, stops=("e", "\n"))
    with LocalCompletionServer(str(tiny_gpt2)) as server:
        a = read_jsonl(sample_problems(_cfg(server.url), probs, tmp_path / "a.jsonl", progress=False))
        b = read_jsonl(sample_problems(_cfg(server.url), probs, tmp_path / "b.jsonl", progress=False))
    assert [(r["problem_id"], r["sample_id"]) for r in a] == [(p.problem_id, s) for p in probs for s in range(2)]
    assert a == b
    assert not any("e" in r["completion"] or "\n" in r["completion"] for r in a)
    assert all(r["logprobs"] and max(r["logprobs"]) <= 0 for r in a)


def test_server_error_and_timeout_are_retried(tiny_gpt2, tmp_path):
    with LocalCompletionServer(str(tiny_gpt2), faults=["error", "hang", "error"], hang_s=4.0) as server:
        cfg = _cfg(server.url, timeout_s=1.5, concurrency=1, retries=3)
        out = sample_problems(cfg, toy_problems(2), tmp_path / "s.jsonl", progress=False)
        assert server.requests == 4 + 3  # four samples, three failed attempts retried
    assert len(read_jsonl(out)) == 4


def test_exhausted_retries_are_reported_and_a_rerun_resumes(tiny_gpt2, tmp_path):
    out = tmp_path / "s.jsonl"
    with LocalCompletionServer(str(tiny_gpt2), faults=["ok", "ok", "error", "error"]) as server:
        cfg = _cfg(server.url, retries=1, concurrency=1, batch_size=1)
        with pytest.raises(RewardRankerError, match="failed after 2 attempts; last: HTTP 500"):
            sample_problems(cfg, toy_problems(2), out, progress=False)
        assert len(read_jsonl(out)) == 2  # the samples drawn before the failure are kept
        assert len(read_jsonl(sample_problems(cfg, toy_problems(2), out, progress=False))) == 4


def test_timeouts_that_never_end_are_reported(tiny_gpt2, tmp_path):
    with LocalCompletionServer(str(tiny_gpt2), faults=["hang", "hang"], hang_s=2.0) as server:
        cfg = _cfg(server.url, retries=1, concurrency=1, batch_size=1, timeout_s=0.5, n=1)
        with pytest.raises(RewardRankerError, match="timed out after 0.5 s"):
            sample_problems(cfg, toy_problems(1), tmp_path / "s.jsonl", progress=False)


def test_unreachable_server_is_reported(tmp_path):
    cfg = _cfg("http://127.0.0.1:9/v1", retries=0, n=1, timeout_s=2.0)
    with pytest.raises(RewardRankerError, match="connection failed"):
        sample_problems(cfg, toy_problems(1), tmp_path / "s.jsonl", progress=False)
