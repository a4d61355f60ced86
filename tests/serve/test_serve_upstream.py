"""Best-of-N over an upstream OpenAI-compatible server: pass-first ranking, retries, 429, timeouts, API key."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest
from conftest import make_config
from serve_helpers import BAD, GOOD, ScriptedUpstream, ThreadServer

from rewardranker.errors import ConfigError
from rewardranker.serve import ServeConfig

SUBTRACTS = "assert f(3) == 2\n"  # BAD (x - 1) passes this; GOOD (x + 1), which the RM prefers, fails it


def test_tests_put_passing_candidates_first_over_the_reward_model(models, exec_cache):
    with ScriptedUpstream([GOOD, BAD, GOOD, GOOD]) as up, \
            ThreadServer(make_config(models, exec_cache, upstream=up.url, upstream_model="coder")) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        plain = client.completions.create(model="best-of-4/coder", prompt="def f(x):\n", seed=5)
        assert plain.choices[0].text == GOOD  # the reward model alone: adding looks right
        tested = client.completions.create(model="best-of-4/coder", prompt="def f(x):\n", seed=5,
                                           extra_body={"tests": [SUBTRACTS]})
        assert tested.choices[0].text == BAD  # the only candidate that passes wins
        assert tested.choices[0].rewardranker["verdict"]["passed"] is True
        assert sum(c["passed"] for c in tested.rewardranker["candidates"]) == 1
        assert tested.usage.completion_tokens == 4 * 5  # the upstream's counts, for all N
        assert tested.usage.prompt_tokens == 4 * 3
    bodies = up.bodies[:4]
    assert all(b["model"] == "coder" and b["n"] == 1 and b["prompt"] == "def f(x):\n" for b in bodies)
    assert len({b["seed"] for b in bodies}) == 4  # each candidate has its own seed


def test_chat_is_forwarded_to_the_upstream_chat_endpoint_and_its_code_block_is_executed(models, exec_cache):
    fenced = "Sure:\n```python\ndef f(x):\n" + BAD + "```\n"
    with ScriptedUpstream([GOOD, fenced, GOOD]) as up, \
            ThreadServer(make_config(models, exec_cache, upstream=up.url, upstream_model="coder")) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        messages = [{"role": "system", "content": "Write Python."}, {"role": "user", "content": "f subtracts one"}]
        r = client.chat.completions.create(model="best-of-3/coder", messages=messages,
                                           extra_body={"tests": [SUBTRACTS]})
        assert r.choices[0].message.content == fenced and r.choices[0].rewardranker["verdict"]["passed"]
        assert r.usage.prompt_tokens == 3 * 3 and r.usage.completion_tokens == 3 * 5
    assert all(b["path"].endswith("/chat/completions") and b["messages"] == messages for b in up.bodies)


def test_an_unreachable_upstream_is_a_502_after_its_retries(models, exec_cache):
    cfg = make_config(models, exec_cache, upstream="http://127.0.0.1:9/v1", upstream_model="coder",
                      upstream_retries=1, upstream_timeout_s=2)
    with ThreadServer(cfg) as srv:
        r = httpx.post(srv.url + "/v1/completions", json={"model": "coder", "prompt": "x", "n_candidates": 2},
                       timeout=60)
        assert r.status_code == 502
        assert r.json()["error"]["type"] == "upstream_error" and "2 attempts" in r.json()["error"]["message"]
        assert httpx.get(srv.url + "/health").status_code == 200


def test_a_full_queue_answers_429_and_every_admitted_request_completes(models, exec_cache):
    with ScriptedUpstream([GOOD], delay_s=3.0) as up, \
            ThreadServer(make_config(models, exec_cache, upstream=up.url, upstream_model="coder", workers=1,
                                     max_queue=1)) as srv:
        results: list[httpx.Response] = []
        lock = threading.Lock()

        def call() -> None:
            r = httpx.post(srv.url + "/v1/completions", timeout=60,
                           json={"model": "coder", "prompt": "def f(x):\n", "n_candidates": 1})
            with lock:
                results.append(r)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 200, 429, 429]
        busy = next(r for r in results if r.status_code == 429)
        assert busy.json()["error"]["type"] == "rate_limit_error" and busy.headers["retry-after"] == "1"
        assert "rewardranker_rejected_total 2.0" in httpx.get(srv.url + "/metrics").text


def test_a_request_past_its_timeout_gets_504(models, exec_cache):
    with ScriptedUpstream([GOOD], delay_s=1.5) as up, \
            ThreadServer(make_config(models, exec_cache, upstream=up.url, upstream_model="coder",
                                     request_timeout_s=0.5)) as srv:
        r = httpx.post(srv.url + "/v1/completions", json={"model": "coder", "prompt": "x", "n_candidates": 1},
                       timeout=30)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


def test_api_key_is_required_when_set_and_off_only_on_loopback(models, exec_cache):
    gen, rm = models
    with pytest.raises(ConfigError, match="api_key"):
        ServeConfig(model=rm, generator=gen, host="0.0.0.0")
    with ThreadServer(make_config(models, exec_cache, api_key="sekrit")) as srv:
        denied = httpx.post(srv.url + "/v1/score", json={"candidates": [GOOD]})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(srv.url + "/metrics").status_code == 401
        assert httpx.get(srv.url + "/health").status_code == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0).completions.create(
                model="local", prompt="x")
        ok = openai.OpenAI(base_url=srv.url + "/v1", api_key="sekrit", max_retries=0).completions.create(
            model="best-of-2/local", prompt="def f(x):\n", max_tokens=4)
        assert ok.choices[0].rewardranker["rank"] == 1
