"""The work behind the endpoints: sample N candidates, execute them, score them, rank them.

Everything here is synchronous and thread-safe; the app runs it on a bounded worker pool. Models are loaded
once per process (in `Engine.__init__`) and shared by every request: the local generator and the reward model
each run one forward pass at a time (a lock), the upstream client keeps one connection pool.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.generation.backend import Generation, Request, sample_seed
from rewardranker.generation.config import GenerationConfig
from rewardranker.generation.openai_server import OpenAIBackend
from rewardranker.problems import truncate
from rewardranker.records import Problem, Sample, Verdict

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_FENCE = re.compile(r"```[\w+#-]*[ \t]*\n(.*?)```", re.DOTALL)


@dataclass
class ServeConfig:
    """Everything `rewardranker serve` is started with."""

    model: Path  # reward-model folder (train-rm)
    generator: Path | None = None  # local HF generator folder, or:
    upstream: str | None = None  # an OpenAI-compatible server, URL up to /v1
    upstream_model: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 4  # requests processed at once (threads sharing the one loaded model)
    max_queue: int = 64  # requests waiting beyond those; more get 429
    request_timeout_s: float = 300.0
    graceful_timeout_s: float = 60.0  # at shutdown, in-flight requests get this long to finish
    api_key: str | None = None
    n_candidates: int = 4  # default N
    max_candidates: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 256  # default new tokens per candidate
    max_tokens_limit: int = 2048
    upstream_retries: int = 3
    upstream_timeout_s: float = 60.0
    upstream_concurrency: int = 16  # upstream calls in flight per request
    upstream_chat: bool = True  # chat requests go to the upstream's /chat/completions (else rendered to a prompt)
    exec_workers: int = 2
    max_concurrent_executions: int = 4
    cache_path: Path | None = None
    sandbox: bool = True
    problems: str | None = "humaneval"  # problem ids a request's `tests` may name
    torch_threads: int | None = None
    ray: str | None = None  # execute on a Ray cluster ("auto", HOST:PORT): ExecutionConfig.ray

    def __post_init__(self) -> None:
        if (self.generator is None) == (self.upstream is None):
            raise ConfigError("generator", "give exactly one of --generator MODEL_DIR or --upstream URL")
        if self.upstream is not None and not self.upstream_model:
            raise ConfigError("upstream_model", "is empty: --upstream needs --upstream-model NAME")
        if self.host not in LOOPBACK and not self.api_key:
            raise ConfigError("api_key", f"is required when listening on {self.host} (not 127.0.0.1): pass "
                                         "--api-key or set REWARDRANKER_API_KEY")
        for name in ("workers", "n_candidates", "max_candidates", "max_tokens", "exec_workers",
                     "max_concurrent_executions", "upstream_concurrency"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(name, f"= {getattr(self, name)!r} must be >= 1")
        if self.max_queue < 0:
            raise ConfigError("max_queue", f"= {self.max_queue} must be >= 0")
        if self.n_candidates > self.max_candidates:
            raise ConfigError("n_candidates", f"= {self.n_candidates} exceeds max_candidates {self.max_candidates}")


@dataclass
class Job:
    """One best-of-N request, validated and resolved."""

    prompt: str
    n_candidates: int
    n_return: int
    rerank: str
    language: str
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    seed: int
    chat: bool
    upstream_model: str
    tests: list[str] | str | None = None
    generated_tests: list[str] | None = None
    messages: list[dict[str, str]] | None = None  # chat requests: forwarded as they are to a chat upstream


@dataclass
class Candidate:
    index: int
    text: str
    n_tokens: int
    finish_reason: str
    score: float = 0.0
    verdict: dict[str, Any] | None = None
    rank: int = 0


@dataclass
class Outcome:
    """The ranked candidates of a job (best first) and what it cost."""

    ranked: list[Candidate]
    prompt_tokens: int
    completion_tokens: int
    executions: list[Verdict] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def extract_code(text: str) -> str:
    """The last fenced code block of a chat answer, or the whole text when it has none."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


def split_model_prefix(model: str) -> tuple[int | None, str]:
    """`best-of-8/NAME` -> (8, NAME); anything else -> (None, model)."""
    m = re.fullmatch(r"best-of-(\d{1,4})/(.*)", model, flags=re.DOTALL)
    return (int(m.group(1)), m.group(2)) if m else (None, model)


class UpstreamBackend(OpenAIBackend):
    """The project's OpenAI-compatible backend (its retries, backoff and timeouts) made for serving: one thread
    pool shared by all requests, the upstream's prompt-token counts kept, and chat requests sent to
    /chat/completions with their messages (the upstream applies its own chat template)."""

    def __init__(self, cfg: GenerationConfig, pool_size: int, forward_chat: bool):
        super().__init__(cfg)
        self.pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="rr-upstream")
        self.completions_url = self.url
        self.chat_url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.forward_chat = forward_chat
        self.messages: list[dict[str, str]] | None = None
        self.prompt_tokens: list[int] = []

    def for_job(self, job: Job) -> UpstreamBackend:
        """A shallow copy (same connection and thread pools) with this request's settings."""
        b = copy.copy(self)
        b.cfg = dataclasses.replace(self.cfg, temperature=job.temperature, top_p=job.top_p,
                                    max_new_tokens=job.max_tokens, model=job.upstream_model)
        chat = job.chat and self.forward_chat
        b.url = self.chat_url if chat else self.completions_url
        b.messages, b.prompt_tokens = (job.messages if chat else None), []
        return b

    def generate(self, requests: list[Request]) -> list[Generation]:
        if len(requests) == 1:  # no hand-off to another thread for a single call
            return [self._with_retries(requests[0])]
        return list(self.pool.map(self._with_retries, requests))

    def _body(self, req: Request) -> dict[str, Any]:
        body = super()._body(req)
        if self.messages is not None:
            body.pop("prompt")
            body["messages"] = self.messages
        return body

    def _parse(self, obj: Any) -> Generation:
        usage = (obj.get("usage") if isinstance(obj, dict) else None) or {}
        self.prompt_tokens.append(int(usage.get("prompt_tokens") or 0))
        if self.messages is None:
            return super()._parse(obj)
        try:
            text = obj["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RewardRankerError(f"{self.url}: response has no choices[0].message.content: "
                                    f"{str(obj)[:200]}") from None
        return Generation(text=text, logprobs=None, n_tokens=int(usage.get("completion_tokens") or 0))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().close()


class Generator:
    """Draw candidates from the local HF generator (one batch at a time) or the upstream server."""

    def __init__(self, cfg: ServeConfig):
        self.local = cfg.generator is not None
        gen_cfg = GenerationConfig(
            backend="hf" if self.local else "openai", model=str(cfg.generator or cfg.upstream_model),
            temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_tokens, logprobs=False,
            batch_size=cfg.max_candidates, base_url=cfg.upstream or "http://127.0.0.1:8000/v1",
            api_key_env="REWARDRANKER_UPSTREAM_API_KEY", concurrency=cfg.upstream_concurrency,
            retries=cfg.upstream_retries, timeout_s=cfg.upstream_timeout_s)
        if self.local:
            from rewardranker.generation.hf import HFBackend

            self.backend = HFBackend(gen_cfg)
        else:
            pool = min(512, cfg.upstream_concurrency * cfg.workers)
            self.backend = UpstreamBackend(gen_cfg, pool, cfg.upstream_chat)
        self.tokenizer = getattr(self.backend, "tok", None)
        self.lock = threading.Lock() if self.local else None
        self.name = f"local:{cfg.generator}" if self.local else f"upstream:{cfg.upstream} ({cfg.upstream_model})"

    def render_chat(self, messages: list[tuple[str, str]]) -> str:
        """A prompt from chat messages: the tokenizer's chat template when it has one, else the texts joined."""
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            convo = [{"role": r, "content": t} for r, t in messages]
            return self.tokenizer.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
        return "\n".join(t for _, t in messages)

    def sample(self, job: Job) -> tuple[list[Generation], int]:
        """N generations and the prompt tokens they cost (all N counted)."""
        reqs = [Request("request", i, job.prompt, tuple(job.stop), sample_seed(job.seed, "request", i))
                for i in range(job.n_candidates)]
        try:
            if self.lock is None:
                backend = self.backend.for_job(job)
                return backend.generate(reqs), sum(backend.prompt_tokens)
            local = copy.copy(self.backend)  # shares the model; settings are per request
            local.cfg = dataclasses.replace(self.backend.cfg, temperature=job.temperature, top_p=job.top_p,
                                            max_new_tokens=job.max_tokens)
            with self.lock:
                gens = local.generate(reqs)
            return gens, len(self.tokenizer(job.prompt)["input_ids"]) * job.n_candidates
        except RewardRankerError as e:
            raise UpstreamError(str(e)) from None

    def close(self) -> None:
        self.backend.close()


class Engine:
    """The loaded models and executor settings, shared by every request of the process."""

    def __init__(self, cfg: ServeConfig):
        from rewardranker.reward import RewardModel

        if cfg.torch_threads:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        self.cfg = cfg
        self.rm = RewardModel.load(cfg.model)
        self.rm_lock = threading.Lock()
        self.generator = Generator(cfg)
        self.exec_slots = threading.BoundedSemaphore(cfg.max_concurrent_executions)
        self._problems: dict[str, Problem] | None = None
        self._problems_lock = threading.Lock()

    # ------------------------------------------------------------------ best-of-N

    def best_of_n(self, job: Job) -> Outcome:
        """Sample, optionally execute against tests, score, and rank: passing first, then by score."""
        clock = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round((now - clock) * 1000, 1)
            clock = now

        gens, prompt_tokens = self.generator.sample(job)
        lap("sample_ms")
        cands = [Candidate(i, truncate(g.text, job.stop), g.n_tokens,
                           "length" if g.n_tokens >= job.max_tokens else "stop") for i, g in enumerate(gens)]
        codes = [extract_code(c.text) if job.chat else c.text for c in cands]
        exec_prompt = "" if job.chat else job.prompt
        verdicts: list[Verdict] = []
        if job.tests is not None:
            problem = self.test_problem(job.tests, job.language, exec_prompt)
            verdicts = self.execute([(problem, code) for code in codes])
            for c, v in zip(cands, verdicts):
                c.verdict = verdict_dict(v)
            lap("execute_ms")
        scores = self.scores(job.prompt, codes, job.language, job.rerank, job.generated_tests)
        lap("score_ms")
        for c, s in zip(cands, scores):
            c.score = s
        ranked = sorted(cands, key=lambda c: (-(c.verdict or {}).get("passed", False), -c.score, c.index))
        for r, c in enumerate(ranked, start=1):
            c.rank = r
        return Outcome(ranked, prompt_tokens, sum(g.n_tokens for g in gens), verdicts, timings)

    def test_problem(self, tests: list[str] | str, language: str, prompt: str) -> Problem:
        """The problem whose tests the candidates run against: asserts given inline, or a known problem's."""
        if isinstance(tests, list):
            return Problem("request", language, prompt, "\n".join(tests) + "\n")
        known = self.problems()
        if tests not in known:
            raise RequestError("tests", f"names no problem this server knows ({len(known)} loaded from "
                                        f"{self.cfg.problems or 'nothing'}); give a list of asserts instead")
        p = known[tests]
        return Problem("request", p.language, prompt, p.tests)

    def problems(self) -> dict[str, Problem]:
        with self._problems_lock:
            if self._problems is None:
                from rewardranker.problems import load_problems, problems_by_id

                self._problems = problems_by_id(load_problems(self.cfg.problems)) if self.cfg.problems else {}
            return self._problems

    # ------------------------------------------------------------------ scoring

    def scores(self, prompt: str, codes: list[str], language: str, mode: str,
               generated_tests: list[str] | None) -> list[float]:
        """One score per candidate for `mode` (rm | agreement | combined), as `rewardranker score` computes."""
        from rewardranker.reward.agreement import (
            AgreementConfig,
            agreement_scores,
            passed_sets,
            per_problem,
            soft_agreement,
        )
        from rewardranker.reward.score import combine, stored_rm_weight

        problems = {"request": Problem("request", language, prompt, "")}
        samples = [Sample("request", i, c, language=language) for i, c in enumerate(codes)]
        rm = agr = None
        if mode in ("rm", "combined"):
            with self.rm_lock:
                rm = self.rm.score(problems, samples, progress=False)
        if mode in ("agreement", "combined"):
            with self.exec_slots:
                sets = passed_sets(problems, samples, {"request": list(generated_tests or [])},
                                   AgreementConfig(), self.exec_config(), progress=False)
            agr = agreement_scores(samples, sets) if mode == "agreement" else per_problem(samples, sets,
                                                                                           soft_agreement)
        if mode == "rm":
            return [float(x) for x in rm]
        if mode == "agreement":
            return [float(x) for x in agr]
        return combine(samples, rm, agr, stored_rm_weight(self.cfg.model))

    # ------------------------------------------------------------------ execution

    def exec_config(self, timeout_s: float | None = None, verdict_rule: str | None = None):
        from rewardranker.execution import ExecutionConfig

        extra = {}
        if verdict_rule is not None:
            if "verdict_rule" not in {f.name for f in dataclasses.fields(ExecutionConfig)}:
                raise RequestError("verdict_rule", "is not supported by this server's executor version")
            extra["verdict_rule"] = verdict_rule
        try:
            return ExecutionConfig(workers=self.cfg.exec_workers, timeout_s=timeout_s, sandbox=self.cfg.sandbox,
                                   allow_unsandboxed=not self.cfg.sandbox, cache_path=self.cfg.cache_path,
                                   ray=self.cfg.ray, **extra)
        except ConfigError as e:
            raise RequestError(e.field, str(e)) from None

    def execute(self, programs: list[tuple[Problem, str]], timeout_s: float | None = None,
                verdict_rule: str | None = None) -> list[Verdict]:
        """Run each (problem, completion) through the sandboxed executor as one batch; verdicts in order."""
        from rewardranker.execution import execute

        problems = {f"p{i}": dataclasses.replace(p, problem_id=f"p{i}") for i, (p, _) in enumerate(programs)}
        samples = [Sample(f"p{i}", 0, completion, language=p.language) for i, (p, completion) in enumerate(programs)]
        cfg = self.exec_config(timeout_s, verdict_rule)
        with self.exec_slots:
            return execute(problems, samples, cfg, progress=False)

    def close(self) -> None:
        self.generator.close()


class RequestError(RewardRankerError):
    """A request field is wrong in a way only the engine can see (e.g. an unknown problem id): HTTP 400."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(message if message.startswith("field") else f"field '{param}' {message}")


class UpstreamError(RewardRankerError):
    """The generator failed (upstream unreachable or erroring after its retries): HTTP 502."""


def verdict_dict(v: Verdict) -> dict[str, Any]:
    """The verdict fields a client sees (no ids: the position says which program it is)."""
    return {"status": str(getattr(v.status, "value", v.status)), "passed": bool(v.passed), "exit_code": v.exit_code,
            "duration_s": v.duration_s, "stdout": v.stdout, "stderr": v.stderr, "cached": v.cached,
            "program_hash": v.program_hash}


def random_seed() -> int:
    return random.SystemRandom().randrange(2**31)
