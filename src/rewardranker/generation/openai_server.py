"""Sampling from an OpenAI-compatible /v1/completions server (vLLM, llama.cpp, TGI, ...) over httpx.

One request per sample, each with its own seed, `concurrency` in flight. A server error (5xx, 429), a timeout
or a dropped connection is retried with exponential backoff; when retries run out the whole call fails with a
message naming the sample, so nothing is dropped silently (samples already written stay; a rerun resumes).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rewardranker.errors import RewardRankerError
from rewardranker.generation.backend import Generation, Request
from rewardranker.generation.config import GenerationConfig

BACKOFF_S = 0.5  # first retry waits this long, then doubles (capped at 8 s)
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class OpenAIBackend:
    def __init__(self, cfg: GenerationConfig):
        import httpx

        self.cfg = cfg
        key = os.environ.get(cfg.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.url = cfg.base_url.rstrip("/") + "/completions"
        self.client = httpx.Client(timeout=cfg.timeout_s, headers=headers,
                                   limits=httpx.Limits(max_connections=cfg.concurrency))

    def generate(self, requests: list[Request]) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(self._with_retries, requests))

    def close(self) -> None:
        self.client.close()

    def _body(self, req: Request) -> dict[str, Any]:
        body = {"model": self.cfg.model, "prompt": req.prompt, "max_tokens": self.cfg.max_new_tokens,
                "temperature": self.cfg.temperature, "top_p": self.cfg.top_p, "seed": req.seed, "n": 1}
        if req.stop:
            body["stop"] = list(req.stop)
        if self.cfg.logprobs:
            body["logprobs"] = 1
        return body

    def _parse(self, obj: Any) -> Generation:
        """The generation in a 200 response (subclasses read other response shapes, e.g. chat)."""
        return parse_completion(obj, self.url)

    def _with_retries(self, req: Request) -> Generation:
        import httpx

        last = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(min(8.0, BACKOFF_S * 2 ** (attempt - 1)))
            try:
                resp = self.client.post(self.url, json=self._body(req))
            except httpx.TimeoutException:
                last = f"timed out after {self.cfg.timeout_s} s"
                continue
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:  # configuration: retrying cannot help
                raise RewardRankerError(f"{self.url}: not a usable server URL ({e}); check --base-url") from None
            except httpx.TransportError as e:
                last = f"connection failed ({e.__class__.__name__}: {e})"
                continue
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                continue
            if resp.status_code != 200:  # a client error will not fix itself: report it now
                raise RewardRankerError(f"{self.url}: HTTP {resp.status_code} for {req.problem_id} sample "
                                        f"{req.sample_id}: {resp.text[:300]}")
            return self._parse(resp.json())
        raise RewardRankerError(f"{self.url}: {req.problem_id} sample {req.sample_id} failed after "
                                f"{self.cfg.retries + 1} attempts; last: {last}. Samples drawn so far are kept: "
                                "rerun the same command to resume")


def parse_completion(obj: Any, url: str) -> Generation:
    """The first choice of a /v1/completions response, with token log-probs when present."""
    try:
        choice = obj["choices"][0]
        text = choice["text"]
    except (KeyError, IndexError, TypeError):
        raise RewardRankerError(f"{url}: response has no choices[0].text: {str(obj)[:200]}") from None
    lp = (choice.get("logprobs") or {}).get("token_logprobs")
    logprobs = [float(x) for x in lp if x is not None] if lp else None
    n_tokens = len(lp) if lp else int((obj.get("usage") or {}).get("completion_tokens", 0))
    return Generation(text=text, logprobs=logprobs, n_tokens=n_tokens)
