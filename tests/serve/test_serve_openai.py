"""The OpenAI-compatible best-of-N endpoints, driven by the official `openai` client against the real server."""

from __future__ import annotations

import httpx
import openai
import pytest
from serve_helpers import BAD, GOOD


@pytest.fixture(scope="module")
def client(local_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=local_server.url + "/v1", api_key="unused", max_retries=0)


def _metric(url: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_completions_best_of_n_returns_the_top_ranked_candidate_and_counts_all_n(client, local_server, models):
    from transformers import AutoTokenizer

    before = _metric(local_server.url, "rewardranker_candidates_sampled_total")
    prompt = "def f3(x):\n"
    r = client.completions.create(model="best-of-4/local", prompt=prompt, max_tokens=8, seed=7)
    assert len(r.choices) == 1
    extra = r.choices[0].rewardranker
    summary = r.rewardranker["candidates"]
    assert r.rewardranker["n_candidates"] == 4 and len(summary) == 4
    assert extra["rank"] == 1 and extra["score"] == max(c["score"] for c in summary)
    assert sorted(c["rank"] for c in summary) == [1, 2, 3, 4]
    n_prompt = len(AutoTokenizer.from_pretrained(models[0])(prompt)["input_ids"])
    assert r.usage.prompt_tokens == 4 * n_prompt
    assert 8 < r.usage.completion_tokens <= 4 * 8  # more than one candidate's tokens are counted
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert _metric(local_server.url, "rewardranker_candidates_sampled_total") == before + 4
    again = client.completions.create(model="best-of-4/local", prompt=prompt, max_tokens=8, seed=7)
    assert again.choices[0].text == r.choices[0].text  # a seed makes the answer reproducible


def test_n_returns_the_n_best_in_rank_order(client):
    r = client.completions.create(model="local", prompt="def f1(x):\n", max_tokens=6, n=3, seed=1,
                                  extra_body={"n_candidates": 5})
    ranks = [c.rewardranker["rank"] for c in r.choices]
    scores = [c.rewardranker["score"] for c in r.choices]
    assert ranks == [1, 2, 3] and scores == sorted(scores, reverse=True)
    assert [c.index for c in r.choices] == [0, 1, 2]


def test_chat_with_tests_executes_every_candidate_and_reports_verdicts(client):
    r = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "def f2(x):\n"}], max_tokens=8, seed=3,
        extra_body={"n_candidates": 3, "tests": ["assert f2(1) == 3"]})
    assert r.choices[0].message.role == "assistant"
    assert r.rewardranker["executed"] is True
    assert all(c["passed"] is not None for c in r.rewardranker["candidates"])
    verdict = r.choices[0].rewardranker["verdict"]
    assert verdict["status"] in ("OK", "Exception", "SyntaxError", "Timeout") and verdict["passed"] is False


def test_streaming_sends_the_chosen_answer_after_ranking(client):
    kw = {"model": "best-of-3/local", "messages": [{"role": "user", "content": "def f5(x):\n"}], "max_tokens": 8,
              "seed": 11}
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    text_kw = {"model": "best-of-2/local", "prompt": "def f6(x):\n", "max_tokens": 6, "seed": 2}
    plain = client.completions.create(**text_kw)
    streamed = "".join(c.choices[0].text for c in client.completions.create(**text_kw, stream=True))
    assert streamed == plain.choices[0].text


def test_bad_requests_get_openai_errors_naming_the_field(client, local_server):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="local", prompt="x", n=5, extra_body={"n_candidates": 2})
    assert e.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="best-of-999/local", prompt="x")
    assert e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}], temperature=-1)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="local", prompt="x", extra_body={"tests": "NoSuch/1"})
    assert e.value.body["param"] == "tests" and "no problem" in e.value.body["message"]
    url = local_server.url
    cases = [
        ("/v1/completions", b"{not json", 400, None),
        ("/v1/completions", b"[1, 2]", 400, None),
        ("/v1/completions", b"[" * 200_000, 400, None),
        ("/v1/completions", b'{"model": "m", "prompt": "x", "n": 1.5}', 400, "n"),
        ("/v1/completions", b'{"model": "m", "prompt": 5}', 400, "prompt"),
        ("/v1/chat/completions", b'{"model": "m", "messages": [{"role": "robot", "content": "x"}]}', 400,
         "messages.0.role"),
        ("/v1/chat/completions", b'{"model": "m", "messages": []}', 400, "messages"),
        ("/v1/completions", b'{"model": "m", "prompt": "x", "max_tokens": 100000}', 400, "max_tokens"),
        ("/v1/completions", b'{"model": "m", "prompt": "x", "rerank": "agreement"}', 400, None),
        ("/v1/completions", b'{"model": "m", "prompt": "x", "language": "cobol"}', 400, "language"),
        ("/v1/score", b'{"candidates": []}', 400, "candidates"),
        ("/v1/execute", b'{"programs": [{"language": "py"}]}', 400, "programs.0"),
        ("/v1/execute", b'{"programs": [{"language": "py", "program": "1"}], "timeout_s": 1e9}', 400, "timeout_s"),
        ("/v1/nothing", b"{}", 404, None),
    ]
    for path, body, status, param in cases:
        resp = httpx.post(url + path, content=body, headers={"content-type": "application/json"})
        assert resp.status_code == status, (path, body, resp.text)
        err = resp.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
        assert err["param"] == param, (path, body, err)
    big = httpx.post(url + "/v1/execute", content=b"x" * (17 * 2**20))
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    assert httpx.get(url + "/health").json()["status"] == "ok"  # still serving


def test_score_ranks_candidates_with_the_trained_reward_model(local_server):
    body = {"prompt": "def f4(x):\n", "candidates": [BAD, GOOD, "    return x - 7\n", "    return x + 5\n"]}
    r = httpx.post(local_server.url + "/v1/score", json=body).json()
    assert len(r["scores"]) == 4
    assert set(r["ranking"][:2]) == {1, 3}  # the RM learned: adding passes, subtracting fails


def test_score_agreement_prefers_the_candidates_that_agree_on_generated_tests(local_server):
    tests = ["assert f(1) == 2", "assert f(2) == 3", "assert f(0) == 1"]
    body = {"prompt": "def f(x):\n", "candidates": [BAD, GOOD, GOOD + "\n", "    return 2 * x\n"],
            "rerank": "agreement", "generated_tests": tests}
    r = httpx.post(local_server.url + "/v1/score", json=body, timeout=120).json()
    assert r["scores"][1] == r["scores"][2] > r["scores"][0]
    assert r["ranking"][:2] == [1, 2]


def test_execute_runs_a_batch_in_the_sandbox_in_order_with_the_cache(local_server, tmp_path):
    escape = tmp_path / "escaped.txt"
    progs = [
        {"language": "py", "prompt": "def f(x):\n", "completion": GOOD, "tests": ["assert f(1) == 2"]},
        {"language": "py", "prompt": "def f(x):\n", "completion": BAD, "tests": "assert f(1) == 2\n"},
        {"language": "py", "program": "def f(:\n"},
        {"language": "js", "program": "console.log(1 + 1);"},
        {"language": "py", "program": f"open({str(escape)!r}, 'w').write('x')"},
        {"language": "py", "program": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"},
    ]
    url = local_server.url + "/v1/execute"
    first = httpx.post(url, json={"programs": progs, "timeout_s": 5}, timeout=120).json()
    got = [(v["index"], v["status"], v["passed"]) for v in first["verdicts"]]
    assert got[:4] == [(0, "OK", True), (1, "Exception", False), (2, "SyntaxError", False), (3, "OK", True)]
    assert first["verdicts"][3]["stdout"] == "2\n"
    assert not first["verdicts"][4]["passed"] and not escape.exists()  # the host's files are out of reach
    assert first["summary"]["programs"] == 6
    second = httpx.post(url, json={"programs": progs[:4], "timeout_s": 5}, timeout=120).json()
    assert [v["cached"] for v in second["verdicts"]] == [True] * 4
    assert [v["status"] for v in second["verdicts"]] == [v["status"] for v in first["verdicts"][:4]]
    assert httpx.get(local_server.url + "/health").json()["status"] == "ok"
    text = httpx.get(local_server.url + "/metrics").text
    assert 'rewardranker_executions_total{language="py",status="OK"}' in text
    assert _metric(local_server.url, "rewardranker_execution_cache_hits_total") >= 4


def test_models_and_health(client, local_server):
    ids = [m.id for m in client.models.list()]
    assert "local" in ids and any(i.startswith("best-of-") for i in ids)
    h = httpx.get(local_server.url + "/health").json()
    assert h["generator"].startswith("local:") and h["capacity"] == 4 + 64


def test_execute_passes_the_verdict_rule_to_executors_that_have_one(local_server):
    from dataclasses import fields

    from rewardranker.execution import ExecutionConfig

    has_rule = "verdict_rule" in {f.name for f in fields(ExecutionConfig)}
    prog = {"programs": [{"language": "py", "program": "print(1)"}], "timeout_s": 5}
    strict = httpx.post(local_server.url + "/v1/execute", json={**prog, "verdict_rule": "strict"}, timeout=120)
    assert strict.status_code == (200 if has_rule else 400)
    bogus = httpx.post(local_server.url + "/v1/execute", json={**prog, "verdict_rule": "lenient?"}, timeout=120)
    assert bogus.status_code == 400 and bogus.json()["error"]["param"] == "verdict_rule"


def test_an_unexpected_server_error_is_a_500_in_openai_shape_and_the_server_keeps_serving(local_server,
                                                                                          monkeypatch):
    engine = local_server.server.config.app.state.engine

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "scores", broken)
    r = httpx.post(local_server.url + "/v1/score", json={"candidates": [GOOD]})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error" and "boom" not in r.text
    monkeypatch.undo()
    assert httpx.post(local_server.url + "/v1/score", json={"candidates": [GOOD]}).status_code == 200
