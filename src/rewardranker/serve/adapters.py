"""Reward functions with the signatures RL trainers call, backed by the service or by the library in-process.

- verl: `custom_reward_function.path=<this file>`, `name=compute_score` (or `compute_score_batch` with
  `reward_model.reward_manager=batch`): `compute_score(data_source, solution_str, ground_truth, extra_info)`.
- OpenRLHF: `--remote_rm_url http://HOST:PORT/openrlhf/reward` (the server route), or a custom reward function
  file exposing `reward_func(queries, prompts, labels)`: re-export ours from it.
- TRL GRPO: `GRPOTrainer(reward_funcs=[reward_func])`: `reward_func(prompts, completions, **kwargs)`.

Every function takes the same judge: `REWARDRANKER_URL` set (and `REWARDRANKER_API_KEY` if the server has a
key) sends the whole batch to a running `rewardranker serve` as one /v1/execute (or /v1/score) call; unset, the
executor runs in this process (`REWARDRANKER_RM=DIR` adds a reward model for rows without tests).
Reward of a row with tests: 1.0 if its program passes them, else 0.0; without tests: the reward model's score.
Tests are a string of test code, a list of asserts, or that list JSON-encoded (verl stores strings).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

from rewardranker.errors import RewardRankerError
from rewardranker.records import LANGUAGES, Problem, Sample
from rewardranker.serve.engine import extract_code, verdict_dict


@dataclass
class Row:
    """One rollout to judge: its prompt, the code it produced, its language and tests (None: use the RM)."""

    prompt: str
    code: str
    language: str = "py"
    tests: str | None = None
    exec_prompt: str = ""  # prepended to the code when executing (completion-style data); chat answers: ""


class Judge(Protocol):
    def execute(self, rows: list[Row]) -> list[dict[str, Any]]:
        """A verdict dict (status, passed, ...) per row, as one batch."""
        ...

    def score(self, prompt: str, candidates: list[str], language: str) -> list[float]:
        """Reward-model scores of candidates for one prompt."""
        ...


class ServiceJudge:
    """Calls a running `rewardranker serve` (one HTTP call per batch)."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 600.0):
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/").removesuffix("/v1")
        self.client = httpx.Client(timeout=timeout_s, headers=headers)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post(self.url + path, json=body)
        if resp.status_code != 200:
            raise RewardRankerError(f"{self.url}{path}: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def execute(self, rows: list[Row]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(rows), 1024):
            progs = [{"language": r.language, "prompt": r.exec_prompt, "completion": r.code, "tests": r.tests or ""}
                     for r in rows[start:start + 1024]]
            out += self._post("/v1/execute", {"programs": progs})["verdicts"]
        return out

    def score(self, prompt: str, candidates: list[str], language: str) -> list[float]:
        body = {"prompt": prompt, "candidates": candidates, "language": language}
        return self._post("/v1/score", body)["scores"]


class LocalJudge:
    """The library in this process: the sandboxed executor, and optionally a reward model folder."""

    def __init__(self, rm_dir: str | None = None, workers: int = 2):
        self.rm_dir, self.workers, self._rm = rm_dir, workers, None

    def execute(self, rows: list[Row]) -> list[dict[str, Any]]:
        from rewardranker.execution import ExecutionConfig, execute

        problems = {f"r{i}": Problem(f"r{i}", r.language, r.exec_prompt, r.tests or "") for i, r in enumerate(rows)}
        samples = [Sample(f"r{i}", 0, r.code, language=r.language) for i, r in enumerate(rows)]
        # trainer rewards come from here: the strict rule, so an early exit 0 is never rewarded
        verdicts = execute(problems, samples, ExecutionConfig(workers=self.workers, verdict_rule="strict"),
                           progress=False)
        return [verdict_dict(v) for v in verdicts]

    def score(self, prompt: str, candidates: list[str], language: str) -> list[float]:
        if self.rm_dir is None:
            raise RewardRankerError("rows without tests need a reward model: set REWARDRANKER_RM=DIR or "
                                    "REWARDRANKER_URL")
        if self._rm is None:
            from rewardranker.reward import RewardModel

            self._rm = RewardModel.load(self.rm_dir)
        problems = {"q": Problem("q", language, prompt, "")}
        samples = [Sample("q", i, c, language=language) for i, c in enumerate(candidates)]
        return self._rm.score(problems, samples, progress=False)


class EngineJudge:
    """The server's own engine (used by the /openrlhf/reward route)."""

    def __init__(self, engine):
        self.engine = engine

    def execute(self, rows: list[Row]) -> list[dict[str, Any]]:
        progs = [(Problem("p", r.language, r.exec_prompt, r.tests or ""), r.code) for r in rows]
        return [verdict_dict(v) for v in self.engine.execute(progs)]

    def score(self, prompt: str, candidates: list[str], language: str) -> list[float]:
        return self.engine.scores(prompt, candidates, language, "rm", None)


_DEFAULT: Judge | None = None


def default_judge() -> Judge:
    """The service at $REWARDRANKER_URL, else the library in-process (made once per process)."""
    global _DEFAULT
    if _DEFAULT is None:
        url = os.environ.get("REWARDRANKER_URL")
        _DEFAULT = (ServiceJudge(url, os.environ.get("REWARDRANKER_API_KEY")) if url
                    else LocalJudge(os.environ.get("REWARDRANKER_RM")))
    return _DEFAULT


def judge_rows(rows: list[Row], judge: Judge | None = None) -> tuple[list[float], list[dict[str, Any] | None]]:
    """(reward, verdict or None) per row: rows with tests run as one execution batch; the rest are RM-scored
    together with the other rows of the same prompt (the reward model's consensus features need the group)."""
    judge = judge or default_judge()
    rewards = [0.0] * len(rows)
    verdicts: list[dict[str, Any] | None] = [None] * len(rows)
    tested = [i for i, r in enumerate(rows) if r.tests]
    if tested:
        for i, v in zip(tested, judge.execute([rows[i] for i in tested])):
            verdicts[i], rewards[i] = v, 1.0 if v["passed"] else 0.0
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        if not r.tests:
            groups.setdefault((r.prompt, r.language), []).append(i)
    for (prompt, language), idx in groups.items():
        for i, s in zip(idx, judge.score(prompt, [rows[i].code for i in idx], language)):
            rewards[i] = float(s)
    return rewards, verdicts


def tests_text(tests: Any) -> str | None:
    """Test code from a string, a list of asserts, or a JSON-encoded list; None when empty."""
    if tests is None:
        return None
    if isinstance(tests, str) and tests.lstrip().startswith("["):
        try:
            tests = json.loads(tests)
        except ValueError:
            pass
    if isinstance(tests, (list, tuple)):
        tests = "\n".join(str(t) for t in tests)
    return str(tests) + "\n" if str(tests).strip() else None


def language_of(*hints: Any, default: str = "py") -> str:
    """The first hint that names one of our languages (also as the last part of e.g. 'multipl-e/cpp')."""
    for hint in hints:
        if isinstance(hint, str):
            last = hint.replace(":", "/").replace("-", "/").rsplit("/", 1)[-1].lower()
            if last in LANGUAGES:
                return last
    return default


def _verl_row(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None) -> Row:
    extra = extra_info if isinstance(extra_info, dict) else {}
    return Row(prompt=str(extra.get("prompt", "")), code=extract_code(solution_str),
               language=language_of(extra.get("language"), data_source), tests=tests_text(ground_truth),
               exec_prompt=str(extra.get("exec_prompt", "")))


def _verl_result(reward: float, verdict: dict | None) -> dict[str, Any]:
    return {"score": reward, "passed": float(bool(verdict and verdict["passed"])),
            "status": verdict["status"] if verdict else "scored"}


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  **_: Any) -> dict[str, Any]:
    """verl's reward function: {"score": 1.0 if the code passes `ground_truth` (tests) else 0.0, ...}."""
    rewards, verdicts = judge_rows([_verl_row(data_source, solution_str, ground_truth, extra_info)])
    return _verl_result(rewards[0], verdicts[0])


def compute_score_batch(data_sources: list[str], solution_strs: list[str], ground_truths: list[Any],
                        extra_infos: list[dict | None] | None = None, **_: Any) -> list[dict[str, Any]]:
    """verl's batch reward manager signature: the whole rollout batch is one execution call."""
    extras = extra_infos if extra_infos is not None else [None] * len(solution_strs)
    rows = [_verl_row(*args) for args in zip(data_sources, solution_strs, ground_truths, extras)]
    rewards, verdicts = judge_rows(rows)
    return [_verl_result(r, v) for r, v in zip(rewards, verdicts)]


def openrlhf_rewards(judge: Judge | None, queries: list[str], prompts: list[str] | None,
                     labels: list[Any] | None) -> dict[str, Any]:
    """OpenRLHF's reward dict as plain lists: {"rewards", "scores", "extra_logs": {"passed": ...}}."""
    prompts = prompts or [""] * len(queries)
    labels = labels if labels is not None else [None] * len(queries)
    rows = []
    for query, prompt, label in zip(queries, prompts, labels):
        response = query[len(prompt):] if prompt and query.startswith(prompt) else query
        language, tests = "py", label
        if isinstance(label, dict):
            language, tests = language_of(label.get("language")), label.get("tests")
        fenced = "```" in response  # a chat answer: run its code block; else the response continues the prompt
        rows.append(Row(prompt=prompt, code=extract_code(response), language=language, tests=tests_text(tests),
                        exec_prompt="" if fenced else prompt))
    rewards, verdicts = judge_rows(rows, judge)
    passed = [float(bool(v and v["passed"])) for v in verdicts]
    return {"rewards": rewards, "scores": rewards, "extra_logs": {"passed": passed}}


def reward_func(queries: list[str], prompts: list[str], labels: list[Any], **_: Any) -> dict[str, Any]:
    """OpenRLHF's custom reward function: tensors of rewards (1.0 pass / 0.0 fail, or RM scores without labels)."""
    import torch

    out = openrlhf_rewards(None, list(queries), list(prompts), list(labels) if labels is not None else None)
    return {"rewards": torch.tensor(out["rewards"]), "scores": torch.tensor(out["scores"]),
            "extra_logs": {"passed": torch.tensor(out["extra_logs"]["passed"])}}


def _text(x: Any) -> str:
    """A TRL prompt/completion: plain text, or conversational messages (the last message's content)."""
    if isinstance(x, list):
        return "\n".join(str(m.get("content", "")) for m in x if isinstance(m, dict))
    return str(x)


def trl_reward(prompts: list[Any], completions: list[Any], tests: list[Any] | None = None,
               language: list[str] | None = None, **_: Any) -> list[float]:
    """TRL GRPO's reward function: dataset columns `tests` (and optional `language`) arrive as keyword lists."""
    rows = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        answer = completion[-1].get("content", "") if isinstance(completion, list) and completion else completion
        conversational = isinstance(completion, list)
        code = extract_code(str(answer)) if conversational else str(answer)
        rows.append(Row(prompt=_text(prompt), code=code, language=language_of(language[i] if language else None),
                        tests=tests_text(tests[i]) if tests else None,
                        exec_prompt="" if conversational else _text(prompt)))
    return judge_rows(rows)[0]


trl_reward.__name__ = "rewardranker_exec"  # TRL logs each reward function under its __name__
